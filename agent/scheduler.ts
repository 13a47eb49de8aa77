/**
 * Runs each collector on its own period and appends what it returns to the sample log
 * as one batch. A round that is still running when the next is due is not doubled up:
 * that tick is skipped (and counted), so a slow source cannot pile up work.
 */
import { StorageFullError } from '../common/storage';
import { logger } from '../common/log';
import type { Collector, Sample } from '../common/types';
import type { SampleLog } from './samplelog';
import { checkId, checkMetric } from '../common/validate';

const log = logger('scheduler');

export class Scheduler {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<string>();
  skipped = 0;

  constructor(private readonly sampleLog: SampleLog) {}

  every(collector: Collector, periodMs: number): void {
    const timer = setInterval(() => void this.round(collector), periodMs);
    this.timers.push(timer);
    // First round soon after start, so a fresh node shows data at once.
    setTimeout(() => void this.round(collector), 10).unref();
  }

  async round(collector: Collector): Promise<void> {
    if (this.running.has(collector.name)) {
      this.skipped++;
      return;
    }
    this.running.add(collector.name);
    try {
      const samples = sanitize(await collector.collect(Date.now()), collector.name);
      await this.sampleLog.append(samples);
    } catch (err) {
      // A full data dir is said once by the storage guard, not every round.
      if (!(err instanceof StorageFullError)) log.error('collector round failed', { collector: collector.name, error: err });
    } finally {
      this.running.delete(collector.name);
    }
  }

  async stop(collectors: Collector[]): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const c of collectors) await c.close?.();
  }
}

const warned = new Set<string>();

/** Drops samples the coordinator would refuse (so one bad value can never block the log). */
function sanitize(samples: Sample[], source: string): Sample[] {
  const out: Sample[] = [];
  for (const s of samples) {
    const bad = !Number.isFinite(s.value) || !Number.isSafeInteger(s.ts) || s.ts < 0 ? 'not a finite value or time' : checkId('entity', s.entity) ?? checkMetric(s.metric);
    if (bad) {
      const key = `${source}:${s.metric}`;
      if (!warned.has(key)) {
        warned.add(key);
        log.warn('dropping invalid sample', { collector: source, entity: s.entity, metric: s.metric, value: s.value, reason: bad });
      }
      continue;
    }
    out.push(s);
  }
  return out;
}
