/**
 * Herd Control on real herd processes with dockerd + CRIU (bed "ctlb", subnet 102), driven the way an
 * operator drives it: the herd CLI (policy set, decisions, decisions approve, run, node
 * drain). One bed, one short schedule (5 s window, an evaluation every 3 s), phases in order:
 *   1. recommend mode: the overloaded node's move is recommended and nothing moves; the
 *      pinned container is never proposed; the draining node is refused as a target;
 *   2. the approved move fails (n3's first restore is made to fail): it is not retried
 *      while its back-off lasts, and the decisions say so;
 *   3. auto mode: a new container overloads n1 again and the controller relieves it alone;
 *   4. kill -9 of the coordinator: the next one has the settings and the decision history;
 *   5. four `herd run`s at once spread by capacity;
 *   6. each other policy (cpu-greedy-mt, balance, low-node-utilization) relieves n1 alone;
 *   7. `herd decisions --plot` draws the run: every node's host load, a mark per move.
 * Every node is labelled herd.cores=0.5 (a slice of this shared machine: its load is its
 * containers' CPU over half a core), so the loads the policy sees are the ones the test sets
 * up; "busy" containers spin in short bursts (a CPU-quota-throttled spinner can make the
 * freeze before a checkpoint fail), and the thresholds are low (5% busy, a 2% gain) because
 * on a crowded machine they get what they get.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { tempDir, waitFor } from '../helpers/tmp';
import { HERD, ROOT, runCmd } from '../helpers/herd';
import { testPki } from '../helpers/pki';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
const SLICE = ['--label', 'herd.cores=0.5'];
const PHASE_MS = 240_000; // a crowded 2-core machine can be slow
const BUSY = 'while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.05; done';

const tls = () => {
  const p = testPki();
  return ['--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey];
};
let server = ''; // any live node: the CLI finds the coordinator from it

async function herd(...args: string[]) {
  // connection flags go before a container command's `--` (herd run), else at the end
  const cut = args.includes('--') ? args.indexOf('--') : args.length;
  for (let attempt = 1; ; attempt++) {
    const r = await runCmd(process.execPath, [HERD, ...args.slice(0, cut), '-s', server, ...tls(), ...args.slice(cut)], 90_000);
    // On a crowded machine an election may be under way: that answer means "not done, ask again".
    if (attempt === 10 || !/UNAVAILABLE: (no coordinator is elected yet|this node is not the coordinator)/.test(r.stderr)) return r;
    await new Promise((res) => setTimeout(res, 1000));
  }
}
async function herdOk(...args: string[]): Promise<string> {
  const r = await herd(...args);
  expect(r.code, `herd ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}
const dead = new Set<string>();
const alive = () => [...nodes.values()].filter((n) => !dead.has(n.id));
async function coordinator(): Promise<string> {
  return (await agreedLeader(alive().map((n) => n.address), 30_000)).address;
}
async function decisions(limit = 200): Promise<any[]> {
  return (await call(adminClient(await coordinator()), 'ListDecisions', { limit })).decisions;
}
async function running(herdId: string): Promise<any> {
  const r = await call(adminClient(await coordinator()), 'ListContainers', {});
  return r.containers.find((c: any) => c.herd_id === herdId && c.state === 'running');
}
const whereIs = async (herdId: string): Promise<string | undefined> => (await running(herdId))?.node_id;
/** herd run through the CLI; returns the RunContainer answer. */
async function run(...args: string[]): Promise<any> {
  return JSON.parse(await herdOk('run', '--json', ...args));
}
const busy = (node: string, ...extra: string[]) => run('--node', node, ...extra, BUSYBOX_IMAGE, '--', 'sh', '-c', BUSY);

let startedMs = 0; // the run's start: the plot's range begins there
beforeAll(async () => {
  startedMs = Date.now();
  bed = await startBed({ nodes: 3, docker: true, name: 'ctlb', subnet: 102 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id, SLICE, n.id === 'n3' ? { HERD_FAULTS: 'migration.fail_restore' } : {}));
  server = await coordinator();
  await waitFor('3 agents streaming', async () => (await connectedNodes(server)).length === 3, 30_000, 100);
  await waitFor('criu capability everywhere', async () => (await call(adminClient(server), 'ListNodes', {})).nodes.every((n: any) => n.capabilities.includes('criu')), 20_000, 200);
});

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

describe('herd control', () => {
  let a = ''; // busy on n1, the one to move
  let p = ''; // busy on n1, pinned
  let approvedId = '';
  let c = ''; // busy on n1, moved by the controller in auto mode

  it('refuses bad settings naming the field and range, and changes nothing', async () => {
    const before = await herdOk('policy', 'show', '--json');
    for (const [arg, field] of [
      ['policies=nope', /policies/],
      ['schedule.periodMs=0', /schedule\.periodMs.*from 1000 to 86400000/],
      ['thresholds.cpu-greedy.rewardThreshold=NaN', /rewardThreshold.*number from 0 to 1/],
      ['filters.maxMissingFraction=1.5', /maxMissingFraction.*from 0 to 1/],
      ['mode=sometimes', /mode/],
    ] as const) {
      const r = await herd('policy', 'set', arg);
      expect(r.code, arg).not.toBe(0);
      expect(r.stderr).toMatch(/INVALID_ARGUMENT/);
      expect(r.stderr).toMatch(field);
    }
    expect(await herdOk('policy', 'show', '--json')).toBe(before);
  }, PHASE_MS);

  it('recommend mode: the move is recommended, with its reason, and nothing moves; pinned never proposed, draining refused', async () => {
    await herdOk('node', 'drain', 'n2');
    a = (await busy('n1')).herd_id;
    p = (await busy('n1', '--label', 'herd.pin=true')).herd_id;
    const set = await herdOk('policy', 'set', 'mode=recommend', 'policies=cpu-greedy', 'hysteresisRounds=1', 'schedule.windowMs=5000', 'schedule.periodMs=3000', 'schedule.firstAfterMs=0', 'thresholds.cpu-greedy.hostActiveThreshold=0.05', 'thresholds.cpu-greedy.rewardThreshold=0.02');
    expect(set).toMatch(/mode: recommend\s+policies: cpu-greedy/);
    const recommended = await waitFor('two decisions recommending a -> n3', async () => {
      const ds = (await decisions()).filter((d) => d.actions.some((x: any) => x.herd_id === a && x.status === 'recommended'));
      return ds.length >= 2 ? ds : undefined;
    }, 150_000, 1000);
    for (const d of recommended) expect(d.actions[0]).toMatchObject({ herd_id: a, from_node_id: 'n1', to_node_id: 'n3', policy: 'cpu-greedy' });
    expect(await whereIs(a)).toBe('n1'); // recommended twice, moved never
    const all = await decisions();
    expect(all.every((d) => d.actions.every((x: any) => x.herd_id !== p && x.to_node_id !== 'n2'))).toBe(true);
    expect(all.some((d) => d.refusals.some((r: any) => r.to_node_id === 'n2' && r.filter === 'draining'))).toBe(true);
    const table = await herdOk('decisions');
    expect(table).toMatch(new RegExp(`move ${a} n1 -> n3: recommended`));
    expect(table).toMatch(/cpu-greedy: .*busiest movable container/);
    approvedId = recommended[0].id;
  }, PHASE_MS);

  it('an approved move that fails is not retried before its back-off', async () => {
    const out = await herdOk('decisions', 'approve', approvedId);
    expect(out).toMatch(new RegExp(`move ${a} n1 -> n3: started`));
    const ended = await waitFor('the approved move ended', async () => {
      const d = (await decisions()).find((x) => x.id === approvedId);
      return d && ['ROLLED_BACK', 'FAILED', 'SUCCEEDED'].includes(d.actions[0].status) ? d : undefined;
    }, 150_000, 1000);
    expect(ended.actions[0].status, ended.actions[0].detail).toBe('ROLLED_BACK'); // n3's first restore fails
    const endedMs = Date.now();
    await waitFor(`${a} running on n1 again`, async () => (await whereIs(a)) === 'n1', 30_000, 500);
    const later = await waitFor('two decisions after the failure', async () => {
      const ds = (await decisions()).filter((d) => Number(d.at_ms) > endedMs);
      return ds.length >= 2 ? ds : undefined;
    }, 30_000, 500);
    for (const d of later) {
      expect(d.actions.filter((x: any) => x.herd_id === a)).toEqual([]);
      expect(d.refusals.some((r: any) => r.herd_id === a && r.filter === 'backoff')).toBe(true);
    }
    const migrations = await call(adminClient(await coordinator()), 'ListMigrations', { herd_id: a });
    expect(migrations.migrations).toHaveLength(1);
    expect(await herdOk('decisions')).toMatch(new RegExp(`refused ${a} \\[backoff\\]: .*rolled back`));
  }, PHASE_MS);

  it('auto mode: an overloaded node is relieved by a migration the controller decided alone', async () => {
    c = (await busy('n1')).herd_id;
    // a short back-off from here: a real migration may fail (a freeze timing out on a crowded
    // machine), and the point is a relief decided alone, not a first try that must succeed
    await herdOk('policy', 'set', 'mode=auto', 'filters.backoffMs=5000', 'filters.backoffMaxMs=20000');
    const moved = await waitFor('a container moved off n1 by a scheduled decision', async () => {
      const d = (await decisions()).find((x) => x.trigger === 'schedule' && x.mode === 'auto' && x.actions.some((y: any) => y.status === 'SUCCEEDED'));
      return d;
    }, 150_000, 1000);
    const action = moved.actions.find((y: any) => y.status === 'SUCCEEDED');
    expect(action).toMatchObject({ from_node_id: 'n1', to_node_id: 'n3', policy: 'cpu-greedy' });
    expect([a, c]).toContain(action.herd_id);
    // the target's inventory reports the container a moment after the migration's record ends
    await waitFor(`${action.herd_id} listed on n3`, async () => (await whereIs(action.herd_id)) === 'n3', 30_000, 500);
    expect(await whereIs(p)).toBe('n1');
    const json = JSON.parse(await herdOk('decisions', '--json'));
    expect(json.find((d: any) => d.id === moved.id).proposals[0].reason).toMatch(/busiest movable container/);
  }, PHASE_MS);

  it('after kill -9 of the coordinator the next one keeps the settings and the decision history', async () => {
    await herdOk('policy', 'set', 'mode=recommend', 'schedule.periodMs=4000');
    const policy = await call(adminClient(await coordinator()), 'GetPolicy', {});
    await new Promise((r) => setTimeout(r, 1000)); // the records reach every agent's log
    const history = await decisions(1000);
    const old = await agreedLeader(alive().map((n) => n.address), 10_000);
    await kill9(nodes.get(old.id)!);
    dead.add(old.id);
    server = alive()[0].address;
    const next = await agreedLeader(alive().map((n) => n.address), 30_000);
    expect(next.id).not.toBe(old.id);
    // asked of whoever coordinates at each try (a crowded machine may hold a second election)
    const got = await waitFor('settings on the new coordinator', async () => {
      const r = await call(adminClient(await coordinator()), 'GetPolicy', {});
      return Number(r.settings.version) === Number(policy.settings.version) ? r : undefined;
    }, 150_000, 1000);
    expect(JSON.parse(got.settings.settings_json)).toEqual(JSON.parse(policy.settings.settings_json));
    const kept = await waitFor('decision history on the new coordinator', async () => {
      const ds = await decisions(1000);
      return history.every((h) => ds.some((d: any) => d.id === h.id && Number(d.revision) >= Number(h.revision))) ? ds : undefined;
    }, 150_000, 1000);
    expect(kept.find((d: any) => d.id === approvedId).actions[0].status).toBe('ROLLED_BACK');
    // the killed node comes back (its containers kept running under its dockerd)
    nodes.set(old.id, startHerdOn(bed, old.id, SLICE));
    dead.delete(old.id);
    await waitFor('3 agents streaming again', async () => (await connectedNodes(await coordinator())).length === 3, 60_000, 200);
  }, PHASE_MS);

  it('herd run x4 in a burst spreads by capacity', async () => {
    await herdOk('node', 'undrain', 'n2');
    // a new coordinator judges nothing until the agents' replays reach the present: an
    // evaluation now (recommend: it moves nothing) says when all three nodes are judged
    await waitFor('all nodes judged again', async () => Number((await call(adminClient(await coordinator()), 'EvaluateNow', {})).summary.judged_nodes) === 3, 150_000, 2000);
    const sleeper = ['--cpus', '0.2', BUSYBOX_IMAGE, '--', 'sleep', '3600'];
    const placed = await Promise.all([0, 1, 2, 3].map(() => run(...sleeper)));
    const per = new Map<string, number>();
    for (const r of placed) per.set(r.node_id, (per.get(r.node_id) ?? 0) + 1);
    expect(per.get('n2') ?? 0).toBeGreaterThanOrEqual(1); // the idle node takes its share...
    expect(Math.max(...per.values())).toBeLessThanOrEqual(2); // ...but not the whole burst
    expect(per.size).toBeGreaterThanOrEqual(2);
    for (const r of placed) {
      expect(r.reason).toMatch(/best of \d node\(s\) by measured plus expected load/);
    }
    const bad = await herd('run', '--node', 'n9', BUSYBOX_IMAGE);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT: node_id: no node "n9"/);
    const huge = await herd('run', '--memory', '900000g', BUSYBOX_IMAGE);
    expect(huge.stderr).toMatch(/FAILED_PRECONDITION: no node can take it/);
  }, PHASE_MS);

  it('each other policy relieves an overloaded node alone (cpu-greedy-mt, balance, low-node-utilization)', async () => {
    const rm = async (herdId: string) => {
      const at = await running(herdId);
      if (at) await bed.docker(at.node_id, 'rm', '-f', at.name);
    };
    for (const id of [a, p, c]) await rm(id);
    await herdOk('policy', 'set', 'mode=auto', 'schedule.periodMs=3000',
      'thresholds.cpu-greedy-mt.hostActiveThreshold=0.05', 'thresholds.cpu-greedy-mt.rewardThreshold=0.02', 'thresholds.cpu-greedy-mt.saturation=0.1',
      'thresholds.balance.band=0.05', 'thresholds.balance.saturation=0.1',
      'thresholds.low-node-utilization.highCpu=0.25', 'thresholds.low-node-utilization.lowMemory=1', 'thresholds.low-node-utilization.lowDiskActive=1');
    for (const policy of ['cpu-greedy-mt', 'balance', 'low-node-utilization']) {
      await herdOk('policy', 'set', `policies=${policy}`);
      const three = [await busy('n1'), await busy('n1'), await busy('n1')];
      const moved = await waitFor(`${policy} moves one of the three off n1`, async () =>
        (await decisions()).find((d) => d.trigger === 'schedule' && d.actions.some((x: any) => x.policy === policy && three.some((r) => r.herd_id === x.herd_id) && x.status === 'SUCCEEDED')),
      100_000, 1000);
      const action = moved.actions.find((x: any) => x.policy === policy);
      expect(action.from_node_id, policy).toBe('n1');
      await waitFor(`${action.herd_id} listed on ${action.to_node_id}`, async () => (await whereIs(action.herd_id)) === action.to_node_id, 30_000, 500);
      for (const r of three) await rm(r.herd_id);
    }
  }, 2 * PHASE_MS);

  it("herd decisions --plot draws every node's host load with a mark per move of the range", async () => {
    const out = tempDir();
    try {
      // Bad input first, as a user would type it: a clear sentence, exit 2, no file.
      const noDir = await herd('decisions', '--plot', '/nonexistent/plots/d.svg');
      expect([noDir.code, noDir.stderr]).toEqual([2, 'herd decisions: cannot write /nonexistent/plots/d.svg: the directory /nonexistent/plots does not exist\n']);
      const inverted = await herd('decisions', '--plot', join(out.dir, 'd.svg'), '--from', '1h', '--to', '2h');
      expect(inverted.code).toBe(2);
      expect(inverted.stderr).toMatch(/^herd decisions: --from \(.*\) must be before --to/);
      expect((await herd('decisions', '--plot', join(out.dir, 'd.svg'), '--from', 'yesterday')).stderr).toMatch(/--from must be now, a duration ago/);
      expect((await herd('decisions', '--from', '1h')).stderr).toMatch(/--from and --to go with --plot FILE.svg/);

      await herdOk('policy', 'set', 'mode=off'); // no new decision while the picture is compared with the list
      const to = Date.now();
      // A decision is dated a second before its evaluation starts (the samples' delivery
      // allowance) and stored when it ends: one under way at `to` is stored by the time this is over.
      await new Promise((r) => setTimeout(r, 10_000));
      // HERD_DECISIONS_PLOT=docs/decisions-plot.svg keeps the picture (how the one in docs/ was made).
      const file = process.env.HERD_DECISIONS_PLOT ? join(ROOT, process.env.HERD_DECISIONS_PLOT) : join(out.dir, 'decisions.svg');
      const said = await herdOk('decisions', '--plot', file, '--from', String(startedMs), '--to', String(to));
      const listed = (await decisions(1000)).filter((d) => Number(d.at_ms) >= startedMs && Number(d.at_ms) <= to);
      const moves = listed.flatMap((d) => d.actions.map((x: any) => `${d.id} ${x.herd_id}`)).sort();
      expect(moves.length).toBeGreaterThanOrEqual(5); // the phases above moved containers
      console.log(said.trim());
      expect(said).toContain(`plot: ${file} (3 nodes, ${listed.length} decisions, ${moves.length} moves)`);

      const doc = new DOMParser({ onError: (level: string, msg: string) => { throw new Error(`${level}: ${msg}`); } }).parseFromString(readFileSync(file, 'utf8'), 'image/svg+xml');
      const all = [...(doc.getElementsByTagName('*') as unknown as Iterable<any>)];
      const lines = [...(doc.getElementsByTagName('polyline') as unknown as Iterable<any>)];
      expect(lines).toHaveLength(3);
      for (const l of lines) expect(l.getAttribute('points').split(' ').length, 'host samples on every node').toBeGreaterThan(10);
      const texts = all.filter((e) => e.tagName === 'text').map((e) => e.textContent);
      for (const n of ['n1', 'n2', 'n3']) expect(texts).toContain(n);
      const marked = all.filter((e) => e.getAttribute('class') === 'move').map((e) => `${e.getAttribute('data-decision')} ${e.getAttribute('data-herd-id')}`).sort();
      expect(marked).toEqual(moves);
    } finally {
      out.cleanup();
    }
  }, PHASE_MS);
});
