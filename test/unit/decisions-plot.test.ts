/**
 * Herd's one SVG writer and its three users: `herd decisions --plot` (range and path checks,
 * one line per node, a mark per move), the simulator's plot and the control experiment's
 * figure. Every picture is parsed by a real XML parser (@xmldom/xmldom), failing on any
 * error, so "it is SVG" is checked, not assumed.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRange, parseTime, plotDecisions, unwritable, type PlotDecision } from '../../cli/decisions-plot';
import { plotExperiment } from '../../bench/control-plot';
import { niceMax } from '../../common/svg-chart';
import { plotRuns } from '../../coordinator/sim/plot';
import { runAll } from '../../coordinator/sim/runner';
import { parseScenario, scenarioSpec } from '../../coordinator/sim/scenario';
import { tempDir } from '../helpers/tmp';

const NOW = Date.parse('2026-12-07T03:00:00Z');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

export function parseSvg(text: string) {
  const doc = new DOMParser({
    onError: (level: string, msg: string) => {
      throw new Error(`${level}: ${msg}`);
    },
  }).parseFromString(text, 'image/svg+xml');
  expect(doc.documentElement?.tagName).toBe('svg');
  return doc;
}
const byClass = (doc: ReturnType<typeof parseSvg>, cls: string) => [...(doc.getElementsByTagName('*') as unknown as Iterable<any>)].filter((e) => e.getAttribute('class') === cls);

describe('--from and --to', () => {
  it('take now, a duration ago, ISO 8601 and epoch ms; default to the last hour', () => {
    expect(parseTime('now', NOW, '--to')).toBe(NOW);
    expect(parseTime('30m', NOW, '--from')).toBe(NOW - 30 * 60_000);
    expect(parseTime('1.5h', NOW, '--from')).toBe(NOW - 90 * 60_000);
    expect(parseTime('2026-12-07T02:00:00Z', NOW, '--from')).toBe(NOW - 3_600_000);
    expect(parseTime(String(NOW - 5), NOW, '--from')).toBe(NOW - 5);
    expect(parseRange(undefined, undefined, NOW)).toEqual({ fromMs: NOW - 3_600_000, toMs: NOW });
  });

  it('refuse a bad or empty range with a sentence naming the flag', () => {
    expect(parseTime('yesterday', NOW, '--from')).toMatch(/^--from must be now, a duration ago .* not "yesterday"/);
    expect(parseTime('2026-13-45T99:00Z', NOW, '--to')).toMatch(/^--to must be/);
    expect(parseTime('-5m', NOW, '--from')).toMatch(/^--from must be/);
    expect(parseRange('1h', '2h', NOW)).toMatch(/--from \(2026-12-07T02:00:00.000Z\) must be before --to \(2026-12-07T01:00:00.000Z\)/);
    expect(parseRange('now', 'now', NOW)).toMatch(/must be before --to/);
    expect(parseRange('40d', undefined, NOW)).toMatch(/longer than 31 days/);
    expect(parseRange('2027-01-01T00:00:00Z', '2027-01-02T00:00:00Z', NOW)).toMatch(/is in the future/);
  });
});

describe('--plot FILE.svg', () => {
  it('is checked before the cluster is asked: a directory, a missing directory, not .svg', () => {
    expect(unwritable(join(tmp.dir, 'ok.svg'))).toBeUndefined();
    writeFileSync(join(tmp.dir, 'there.svg'), 'old');
    expect(unwritable(join(tmp.dir, 'there.svg'))).toBeUndefined(); // overwritten
    mkdirSync(join(tmp.dir, 'dir.svg'));
    expect(unwritable(join(tmp.dir, 'dir.svg'))).toMatch(/is a directory; give a file name/);
    expect(unwritable('/nonexistent/plots/x.svg')).toMatch(/cannot write \/nonexistent\/plots\/x.svg: the directory \/nonexistent\/plots does not exist/);
    expect(unwritable(join(tmp.dir, 'x.png'))).toMatch(/ending in .svg/);
    writeFileSync(join(tmp.dir, 'file'), '');
    expect(unwritable(join(tmp.dir, 'file', 'x.svg'))).toMatch(/is not a directory/);
  });
});

describe('plotDecisions', () => {
  const range = { fromMs: NOW - 600_000, toMs: NOW };
  const nodes = [
    { id: 'n1', points: [[NOW - 500_000, 80], [NOW - 300_000, 90], [NOW - 100_000, 40]] as Array<[number, number]> },
    { id: 'n2', points: [[NOW - 500_000, 10], [NOW - 300_000, 20], [NOW - 100_000, 55]] as Array<[number, number]> },
    { id: 'n3', points: [] },
  ];
  const action = (herd_id: string, status: string) => ({ herd_id, from_node_id: 'n1', to_node_id: 'n2', policy: 'balance', reason: 'n1 at 90% <"over">', status, detail: '' });
  const decisions: PlotDecision[] = [
    { id: 'd-1', at_ms: NOW - 400_000, mode: 'recommend', trigger: 'schedule', note: 'nothing over its threshold', actions: [] },
    { id: 'd-2', at_ms: String(NOW - 250_000), mode: 'auto', trigger: 'schedule', note: 'one move', actions: [action('h1', 'SUCCEEDED'), action('h2', 'ROLLED_BACK')] },
    { id: 'd-3', at_ms: NOW - 50_000, mode: 'recommend', trigger: 'evaluate-now', note: 'waits', actions: [action('h3', 'recommended')] },
    { id: 'd-0', at_ms: NOW - 900_000, mode: 'auto', trigger: 'schedule', note: 'before the range', actions: [action('h9', 'SUCCEEDED')] },
  ];

  it("draws one line per node and a mark per move of the range's decisions, as valid SVG", () => {
    const doc = parseSvg(plotDecisions(range, nodes, decisions));
    expect(doc.getElementsByTagName('polyline').length).toBe(3); // n3 has no samples: an empty line, still in the legend
    const labels = [...(doc.getElementsByTagName('text') as unknown as Iterable<any>)].map((t) => t.textContent);
    for (const n of ['n1', 'n2', 'n3']) expect(labels).toContain(n);
    const moves = byClass(doc, 'move');
    expect(moves.map((m) => m.getAttribute('data-herd-id'))).toEqual(['h1', 'h2', 'h3']);
    expect(moves.map((m) => m.getAttribute('data-decision'))).toEqual(['d-2', 'd-2', 'd-3']);
    expect(moves[2].getAttribute('fill')).toBe('white'); // recommended: hollow
    expect(moves[0].getElementsByTagName('title')[0].textContent).toBe('d-2: h1 n1 -> n2 [SUCCEEDED] balance: n1 at 90% <"over">');
    expect(byClass(doc, 'evaluation').map((e) => e.getAttribute('data-decision'))).toEqual(['d-1', 'd-2', 'd-3']);
  });

  it('an empty range draws the frame, no marks', () => {
    const doc = parseSvg(plotDecisions(range, [], []));
    expect(byClass(doc, 'move')).toHaveLength(0);
    expect(doc.getElementsByTagName('rect').length).toBeGreaterThan(0);
  });
});

describe('the one SVG writer', () => {
  it("draws the control experiment's figure as valid SVG", () => {
    const svg = plotExperiment([{ scenario: 'cpu', label: 'balance', bucketMs: 5000, ops: [1, 3, NaN], load: [0.2, 0.6, 0.4], moves: [{ herdId: 'h1', from: 'n1', to: 'n3', ms: 4000 }] }], 'a & b');
    expect(parseSvg(svg).getElementsByTagName('polyline').length).toBe(2);
  });

  it("draws `herd sim --plot`'s picture as valid SVG: a line per node, a tick per migration in both panels", () => {
    const file = join(__dirname, '../../scenarios/staircase-cpu.json');
    const s = parseScenario(readFileSync(file, 'utf8'), file);
    const [run] = runAll(scenarioSpec(s), ['cpu-greedy'], s.controller);
    expect(run.metrics.migrations).toBeGreaterThan(0);
    const doc = parseSvg(plotRuns([run], 'staircase'));
    expect(doc.getElementsByTagName('polyline').length).toBe(run.nodeIds.length + 2); // nodes' load; ops and ideal
    const ticks = [...(doc.getElementsByTagName('line') as unknown as Iterable<any>)].filter((l) => l.getAttribute('stroke') === '#d62728' || l.getAttribute('stroke') === '#000');
    expect(ticks).toHaveLength(2 * run.migrations.length);
  });

  it('rounds axis tops to 1, 2, 2.5 or 5 times a power of ten', () => {
    expect(niceMax(3.7)).toBe(4);
    expect(niceMax(90)).toBe(100);
    expect(niceMax(0)).toBeGreaterThan(0);
  });
});
