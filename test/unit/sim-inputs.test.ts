import { describe, expect, it } from 'vitest';
import { cloudSimSetup, parsePlanetLab, planetLabContainers } from '../../coordinator/sim/planetlab';
import { parseScenario, scenarioSpec } from '../../coordinator/sim/scenario';

const header = 'vm,t0,t5,t10';

describe('PlanetLab trace loader', () => {
  it('reads rows and maps them the CloudSim way (four VM types in contiguous blocks)', () => {
    const rows = parsePlanetLab(`${header}\na,10,20,30\nb,0,0,0\nc,100,50,0\nd,1,2,3\n`, 'day.csv');
    expect(rows.map((r) => r.name)).toEqual(['a', 'b', 'c', 'd']);
    const cs = planetLabContainers(rows);
    expect(cs.map((c) => c.limitUnits)).toEqual([2500, 2000, 1000, 500]);
    expect(cs.map((c) => c.memoryBytes / 2 ** 20)).toEqual([870, 1740, 1740, 613]);
    expect(cs[0].cpu.values).toEqual([250, 500, 750]);
    const spec = cloudSimSetup(rows);
    expect(spec.nodes).toHaveLength(800);
    expect(spec.nodes.slice(0, 2).map((n) => n.peUnits)).toEqual([1860, 2660]);
  });
  it.each([
    [`${header}\na,10,x,30`, 'line 2, column t5: "x" is not a number'],
    [`${header}\na,10,,30`, 'line 2, column t5: "" is not a number'],
    [`${header}\na,10,20`, 'line 2: 2 values, the header has 3'],
    [`${header}\na,10,20,130`, 'line 2, column t10: 130 is outside 0..100 percent'],
    [`name,t0\na,1`, 'line 1: expected a header'],
    [`${header}\n`, 'no VM rows'],
  ])('names the line and column of bad input: %s', (text, message) => {
    expect(() => parsePlanetLab(text, 'day.csv')).toThrow(message);
  });
});

const scenario = (over: Record<string, unknown>) =>
  JSON.stringify({ durationS: 600, nodes: [{ id: 'n1', cores: 2 }], containers: [{ id: 'c', node: 'n1', cpu: { constant: 1 } }], ...over }, null, 2);

describe('scenario files', () => {
  it('accepts a small scenario and expands counts', () => {
    const s = parseScenario(scenario({ nodes: [{ id: 'n', count: 3, cores: 2 }], containers: [{ id: 'c', count: 4, cpu: { steps: [[0, 0.5], [300, 1]] } }] }), 's.json');
    const spec = scenarioSpec(s);
    expect(spec.nodes.map((n) => n.id)).toEqual(['n-1', 'n-2', 'n-3']);
    expect(spec.containers).toHaveLength(4);
    expect(Array.from(spec.containers[0].cpu.values).slice(0, 3)).toEqual([500, 1000, 1000]);
  });
  it('names the line and field of a bad value', () => {
    expect(() => parseScenario(scenario({ nodes: [{ id: 'n1', cores: 0 }] }), 's.json')).toThrow(/s\.json line 6, nodes\.0\.cores: must be above 0/);
  });
  it('names an unknown node, an unknown policy and an unknown field', () => {
    expect(() => parseScenario(scenario({ containers: [{ id: 'c', node: 'nx', cpu: { constant: 1 } }] }), 's.json')).toThrow(/containers\.0\.node: no node "nx"/);
    expect(() => parseScenario(scenario({ policies: ['none', 'magic'] }), 's.json')).toThrow(/line \d+, policies\.1: unknown policy "magic"/);
    expect(() => parseScenario(scenario({ colour: 'red' }), 's.json')).toThrow(/unknown field\(s\) colour/);
  });
  it('reports a JSON syntax error with its line', () => {
    expect(() => parseScenario('{\n  "durationS": 600,\n  "nodes": [\n}', 's.json')).toThrow(/s\.json line 4:/);
  });
});
