/**
 * `herd sim` as a user types it (README, docs/simulator.md), through the built program
 * (dist/herd.cjs, rebuilt by the global setup): a scenario file with --json and --plot, and
 * bad input answered with a sentence naming what is wrong.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HERD, ROOT, runCmd } from '../helpers/herd';
import { tempDir } from '../helpers/tmp';

const herd = (...args: string[]) => runCmd(process.execPath, [HERD, ...args], 120_000);
const tmp = tempDir('herd-sim-cli-');
afterAll(() => tmp.cleanup());

describe('herd sim', () => {
  it('runs a scenario file: the table as JSON, the plot as SVG, the same figures for the same seed', async () => {
    const svg = join(tmp.dir, 'exp.svg');
    const scenario = join(ROOT, 'scenarios', 'bed-experiment-disk.json');
    const one = await herd('sim', scenario, '--json', '--plot', svg);
    expect(one.code, one.stderr).toBe(0);
    const runs = JSON.parse(one.stdout).runs as { policy: string; migrations: number; ops: number; opsVsIdeal: number }[];
    expect(runs.map((r) => r.policy)).toEqual(['none', 'oltp-disk', 'balance']);
    expect(runs[0].opsVsIdeal).toBeCloseTo(1 / 3, 2); // 1 s of docker run: a third of the ideal within 0.1 %
    expect(runs[1].migrations).toBeGreaterThan(0);
    expect(readFileSync(svg, 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    const two = await herd('sim', scenario, '--json');
    const again = JSON.parse(two.stdout).runs as typeof runs;
    expect(again.map((r) => [r.ops, r.migrations])).toEqual(runs.map((r) => [r.ops, r.migrations]));
  }, 240_000);

  it('names an unknown policy and a missing trace', async () => {
    const bad = await herd('sim', join(ROOT, 'scenarios', 'bed-experiment-cpu.json'), '--policy', 'none,best');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown policy "best"/);
    const missing = await herd('sim', '--trace', '/nonexistent/day.csv');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/\/nonexistent\/day\.csv/);
  }, 240_000);
});
