/**
 * The forecast's training history in the simulator: another day of the same cluster. A
 * coordinator trains its model on the cluster's past and forecasts its future, so the model
 * must never see the run it is judged on (training on the judged run's own first half taught
 * it that run's placements, and trees do not extrapolate to the ones it never showed).
 *
 * `otherDay` keeps what a cluster's past knows (the nodes; each container's application:
 * threads, memory, limits, ops model, its peak demand) and redraws when it is busy and how
 * much, from another seed: every `stepMs` a container is idle (a third of the time) or busy
 * at a uniform share of its peak, its CPU and disk demand together (an application's load
 * drives both). Pure: a spec and a seed in, a spec out.
 */
import { mulberry32 } from '../../common/random';
import type { Series, SimContainer, SimSpec } from './model';

/** Share of steps in which a container of the other day is idle. */
export const IDLE_SHARE = 1 / 3;

const peakOf = (s: Series | undefined): number => {
  let m = 0;
  if (s) for (let i = 0; i < s.values.length; i++) m = Math.max(m, s.values[i]);
  return m;
};

/** The same cluster and applications as `spec`, their demand over the same duration redrawn from `seed`. */
export function otherDay(spec: SimSpec, seed: number, stepMs = 60_000): SimSpec {
  const rnd = mulberry32(seed);
  const steps = Math.ceil(spec.durationMs / stepMs) + 1;
  const containers = spec.containers.map((c): SimContainer => {
    const cpuPeak = peakOf(c.cpu);
    const iopsPeak = peakOf(c.iops);
    const level = Array.from({ length: steps }, () => (rnd() < IDLE_SHARE ? 0 : rnd()));
    const series = (peak: number): Series => ({ stepMs, values: level.map((u) => u * peak), interpolate: 'step' });
    return { ...c, cpu: series(cpuPeak), ...(c.iops ? { iops: series(iopsPeak) } : {}) };
  });
  // CloudSim's bookkeeping would remove a container for good at its first idle step
  return { ...spec, containers, seed, cloudSimClock: false };
}
