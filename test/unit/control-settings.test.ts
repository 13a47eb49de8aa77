import { describe, expect, it } from 'vitest';
import { POLICIES } from '../../coordinator/control/policies';
import { DEFAULT_SETTINGS, mergeSettings, POLICY_NAMES, validateSettings } from '../../coordinator/control/settings';

const bad = (x: unknown) => {
  const r = validateSettings(x);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(x)}`);
  return r.error;
};

describe('controller settings', () => {
  it("defaults are the thesis's schedule and OLTP thresholds", () => {
    expect(DEFAULT_SETTINGS.mode).toBe('off');
    expect(DEFAULT_SETTINGS.schedule).toEqual({ windowMs: 30_000, periodMs: 150_000, firstAfterMs: 150_000 });
    expect(DEFAULT_SETTINGS.hysteresisRounds).toBe(5);
    expect(DEFAULT_SETTINGS.filters.maxMissingFraction).toBe(0.02);
    expect(DEFAULT_SETTINGS.filters.staleAfterMs).toBe(180_000);
    expect(DEFAULT_SETTINGS.thresholds['oltp-disk']).toEqual({
      baselineOps: 8000,
      baselineThreshold: 0.005,
      opsRewardThreshold: 0.35,
      activeThreshold: 0.15,
      activeRewardThreshold: 0.15,
      missingSamples: 0.02,
      fallback: 'cpu-greedy-mt',
    });
  });

  it('fills what is missing from a partial object', () => {
    const r = validateSettings({ mode: 'auto', thresholds: { 'cpu-greedy': { rewardThreshold: 0.2 } } });
    expect(r.ok && r.settings.thresholds['cpu-greedy']).toEqual({ ...DEFAULT_SETTINGS.thresholds['cpu-greedy'], rewardThreshold: 0.2 });
    expect(r.ok && r.settings.mode).toBe('auto');
    expect(validateSettings(undefined)).toEqual({ ok: true, settings: DEFAULT_SETTINGS });
  });

  it('names the field and its allowed range for each bad value', () => {
    expect(bad({ policies: ['nope'] })).toMatch(/^policies\.0: must be one of cpu-greedy, cpu-greedy-mt, oltp-disk, balance, random, low-node-utilization, forecast$/);
    expect(bad({ policies: [] })).toMatch(/policies: must name at least one policy/);
    expect(bad({ policies: ['balance', 'balance'] })).toMatch(/policies: must not name a policy twice/);
    expect(bad({ thresholds: { 'oltp-disk': { opsRewardThreshold: 1.5 } } })).toBe('thresholds.oltp-disk.opsRewardThreshold: must be from 0 to 1');
    expect(bad({ thresholds: { 'cpu-greedy': { rewardThreshold: -0.1 } } })).toBe('thresholds.cpu-greedy.rewardThreshold: must be from 0 to 1');
    expect(bad({ thresholds: { balance: { cpuWeight: NaN } } })).toBe('thresholds.balance.cpuWeight: must be a number from 0 to 1');
    expect(bad({ schedule: { periodMs: 0 } })).toBe('schedule.periodMs: must be from 1000 to 86400000 ms');
    expect(bad({ schedule: { periodMs: 1e12 } })).toBe('schedule.periodMs: must be from 1000 to 86400000 ms');
    expect(bad({ schedule: { windowMs: 2.5 } })).toMatch(/schedule.windowMs: must be whole milliseconds/);
    expect(bad({ hysteresisRounds: 0 })).toBe('hysteresisRounds: must be from 1 to 100');
    expect(bad({ pacing: { maxPerNode: 'two' } })).toBe('pacing.maxPerNode: must be a number from 1 to 16');
    expect(bad({ mode: 'sometimes' })).toMatch(/^mode: /);
    expect(bad({ colour: 'blue' })).toBe('(settings): unknown field(s) colour');
    expect(bad({ thresholds: { balance: { cpuWeigth: 1 } } })).toBe('thresholds.balance: unknown field(s) cpuWeigth');
  });

  it('reports every bad field at once', () => {
    const e = bad({ hysteresisRounds: -1, schedule: { periodMs: 0 } });
    expect(e).toContain('hysteresisRounds');
    expect(e).toContain('schedule.periodMs');
  });

  it('checks fields against each other', () => {
    expect(bad({ filters: { backoffMs: 600_000, backoffMaxMs: 60_000 } })).toBe('filters.backoffMaxMs: must be at least filters.backoffMs (600000 ms)');
    expect(bad({ thresholds: { balance: { cpuWeight: 0, diskWeight: 0 } } })).toBe('thresholds.balance: cpuWeight + diskWeight must be above 0');
    expect(bad({ pacing: { maxMovesPerRound: 5, maxClusterWide: 2 } })).toBe('pacing.maxMovesPerRound: must be at most pacing.maxClusterWide (2)');
    expect(bad({ schedule: { windowMs: 3_600_000 } })).toMatch(/schedule.windowMs: must be at most filters.staleAfterMs \+ schedule.periodMs/);
  });

  it('merges a patch over settings in force, leaving them untouched when the patch is bad', () => {
    const auto = mergeSettings(DEFAULT_SETTINGS, { mode: 'auto', policies: ['balance', 'cpu-greedy'] });
    expect(auto.ok && auto.settings.policies).toEqual(['balance', 'cpu-greedy']);
    expect(auto.ok && auto.settings.schedule).toEqual(DEFAULT_SETTINGS.schedule);
    expect(mergeSettings(DEFAULT_SETTINGS, { hysteresisRounds: 1000 }).ok).toBe(false);
    expect(mergeSettings(DEFAULT_SETTINGS, 'auto')).toEqual({ ok: false, error: '(settings): must be an object' });
    expect(DEFAULT_SETTINGS.mode).toBe('off');
  });

  it('knows exactly the policies of the registry, each with valid defaults', () => {
    expect(Object.keys(POLICIES).sort()).toEqual([...POLICY_NAMES].sort());
    for (const name of POLICY_NAMES) {
      const p = POLICIES[name];
      expect(p.name).toBe(name);
      expect(p.summary.length).toBeGreaterThan(20);
      expect(p.validate(p.defaults)).toBeNull();
      expect(p.validate({ nonsense: 1 })).toMatch(/unknown field/);
    }
  });
});
