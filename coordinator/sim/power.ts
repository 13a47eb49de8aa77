/**
 * Host power models: watts as a function of CPU utilization (0..1), linear between points
 * measured every 10% (SPECpower_ssj2008), as CloudSim's PowerModelSpecPower does. The two
 * HP ProLiant models are the ones CloudSim's PlanetLab benchmark uses; 'generic' is a linear
 * model for nodes the scenario gives no figures for.
 */
export interface PowerModel {
  readonly name: string;
  /** Watts at 0%, 10%, ... 100% utilization (11 points). */
  readonly points: readonly number[];
}

export const POWER_MODELS: Readonly<Record<string, PowerModel>> = {
  ml110g4: { name: 'ml110g4', points: [86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117] },
  ml110g5: { name: 'ml110g5', points: [93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135] },
  generic: { name: 'generic', points: [70, 73, 76, 79, 82, 85, 88, 91, 94, 97, 100] },
};

/** Watts at a utilization, CloudSim's interpolation (same arithmetic, so same doubles). */
export function watts(model: PowerModel, utilization: number): number {
  const u = Math.min(1, Math.max(0, utilization));
  if (u % 0.1 === 0) return model.points[Math.round(u * 10)];
  const u1 = Math.floor(u * 10);
  const u2 = Math.ceil(u * 10);
  const p1 = model.points[u1];
  const p2 = model.points[u2];
  return p1 + ((p2 - p1) / 10) * (u - u1 / 10) * 100;
}
