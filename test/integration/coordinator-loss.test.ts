/**
 * The coordinator lost in the middle of a migration, on real processes (herd, dockerd, CRIU on
 * three bed nodes; the election decides who coordinates):
 * - a coordinator cut off from the other two steps down (check-quorum): a client's Migrate
 *   stream there ends with UNAVAILABLE and where to ask, the migration goes on between the
 *   agents and the new coordinator reports how it ended;
 * - a coordinator killed -9 right after it commanded a migration whose command never reached
 *   the source (their link cut): once it coordinates again, it asks the source, which records
 *   the migration as never started; the record ends ROLLED_BACK, and the container may migrate.
 *   A process killed -9 does not take its unsent bytes with it: the kernel keeps the closed
 *   socket (FIN-WAIT-1) and retransmits the queued command until the peer takes it, so a
 *   healed cut would deliver the command after its coordinator died (seen 3 of 3 runs, the
 *   command arriving ~200 ms after the heal). A node that is lost loses its kernel too: the
 *   test ends what the dead process left (`ss -K` in its namespace) before the cut heals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, kill9, settledWithCriu, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { HERD, runCmd } from '../helpers/herd';
import { testPki } from '../helpers/pki';
import { waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
// every source waits before its transfer: a window in which the coordinator is lost
const ENV = { HERD_FAULTS: 'migration.pause_before_complete_ms=3000' };
const cuts: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'ex2', subnet: 162 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id, [], ENV));
  await settled();
});

afterAll(async () => {
  for (const heal of cuts.splice(0)) await heal().catch(() => {});
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

const addresses = () => [...nodes.values()].map((n) => n.address);

const settled = () => settledWithCriu(addresses());

/** Drops everything between node `on` and the given nodes, in `on`'s namespace; returns the healing. */
async function cut(on: string, from: string[]): Promise<() => Promise<unknown>> {
  const rules = from.flatMap((o) => [['INPUT', '-s', bed.node(o).ip], ['OUTPUT', '-d', bed.node(o).ip]]);
  for (const [chain, dir, ip] of rules) expect((await bed.exec(on, 'iptables', ['-I', chain, dir, ip, '-j', 'DROP'])).code).toBe(0);
  const heal = () => Promise.all(rules.map(([chain, dir, ip]) => bed.exec(on, 'iptables', ['-D', chain, dir, ip, '-j', 'DROP'])));
  cuts.push(heal);
  return heal;
}

async function runCounter(node: string, name: string, coordinator: string): Promise<string> {
  const r = await bed.docker(node, 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
  expect(r.code, r.stderr).toBe(0);
  const herdId = r.stdout.trim().slice(0, 12);
  await waitFor(`${name} listed running`, async () => (await call(adminClient(coordinator), 'ListContainers', { node_id: node })).containers.some((c: any) => c.herd_id === herdId && c.state === 'running'), 15_000, 100);
  return herdId;
}

async function runsOn(name: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of bed.nodes) if ((await bed.docker(n.id, 'ps', '--format', '{{.Names}}')).stdout.split('\n').includes(name)) out.push(n.id);
  return out;
}

async function record(coordinator: string, herdId: string, id: string): Promise<any> {
  return (await call(adminClient(coordinator), 'ListMigrations', { herd_id: herdId })).migrations.find((m: any) => m.migration_id === id);
}

/** The client's stream ended with UNAVAILABLE and where to ask; the migration ends at the new coordinator. */
async function steppedDown(pending: ReturnType<typeof migrate>, herdId: string, source: string, target: string): Promise<void> {
  const r = await pending;
  expect(r.error?.code, JSON.stringify(r.error)).toBe(14);
  const id = r.records[0].migration_id;
  expect(r.error!.details).toMatch(new RegExp(`^coordinator stepped down \\(.*\\); the migration ${id} continues between the agents, ask the new coordinator: herd migrations ${herdId}`));
  // whoever coordinates now (on a loaded machine the role may move again meanwhile)
  const last = await waitFor('the migration ended at the new coordinator', async () => {
    const now = await agreedLeader([source, target].map((n) => nodes.get(n)!.address), 3_000);
    const m = await record(now.address, herdId, id).catch(() => undefined);
    return m && ['SUCCEEDED', 'ROLLED_BACK', 'FAILED'].includes(m.state) ? m : undefined;
  }, 30_000, 200);
  expect(last.state, last.reason).toBe('SUCCEEDED');
  expect(await runsOn('stepdown')).toEqual([target]);
  // the command the sentence names, as a user types it (with the test cluster's operator certificate)
  const said = /ask the new coordinator: (herd migrations .*)$/.exec(r.error!.details)![1].split(' ').slice(1);
  const pki = testPki();
  const cli = await runCmd(process.execPath, [HERD, ...said, '--cacert', pki.caCert, '--cert', pki.adminCert, '--key', pki.adminKey], 30_000);
  expect(cli.code, cli.stderr).toBe(0);
  expect(cli.stdout).toMatch(new RegExp(`^\\S+Z  ${id}  ${herdId}  ${source} -> ${target}  SUCCEEDED`, 'm'));
}

describe('the coordinator lost mid-migration', () => {
  it('a coordinator that steps down ends the Migrate stream with UNAVAILABLE and where to ask; the migration ends at the new one', async () => {
    const c = await settled();
    const [source, target] = bed.nodes.map((n) => n.id).filter((id) => id !== c.id);
    const herdId = await runCounter(source, 'stepdown', c.address);
    const pending = migrate(c.address, herdId, target, 'FS_MODE_DIFF', 60_000);
    await waitFor('the migration running', async () => (await call(adminClient(c.address), 'ListMigrations', { herd_id: herdId })).migrations.some((m: any) => m.state === 'RUNNING'), 15_000, 50);
    const heal = await cut(c.id, [source, target]); // the client (the test host) still reaches it
    try {
      await steppedDown(pending, herdId, source, target);
    } finally {
      await heal();
    }
  }, 120_000);

  it('a command that died with its coordinator: the coordinator, leading again, asks the source, which records it as never started', async () => {
    const l = await settled();
    const [source, target] = bed.nodes.map((n) => n.id).filter((id) => id !== l.id);
    const herdId = await runCounter(source, 'orphan', l.address);
    const heal = await cut(l.id, [source]);
    const r = migrate(l.address, herdId, target, 'FS_MODE_DIFF', 10_000);
    // the command is written into a stream that no longer carries anything; the record is PENDING
    const id = await waitFor('the PENDING record', async () => (await call(adminClient(l.address), 'ListMigrations', { herd_id: herdId })).migrations.find((m: any) => m.state === 'PENDING')?.migration_id, 5_000, 20);
    await kill9(nodes.get(l.id)!);
    // the dead process's sockets, as a lost node's kernel would have them: none (see the top;
    // TIME-WAIT ones carry nothing and cannot be ended)
    const toSource = ['state', 'all', 'exclude', 'time-wait', 'dst', bed.node(source).ip];
    const left = await bed.exec(l.id, 'ss', ['-tnHo', ...toSource]);
    console.log(`sockets to ${source} the killed coordinator left (state, Recv-Q, Send-Q, ...):\n${left.stdout}`);
    expect((await bed.exec(l.id, 'ss', ['-tnK', ...toSource])).code).toBe(0);
    expect((await bed.exec(l.id, 'ss', ['-tnH', ...toSource])).stdout.trim()).toBe('');
    await heal();
    await r;
    nodes.set(l.id, startHerdOn(bed, l.id, [], ENV));
    // until the node that commanded it leads again (a graceful stop hands the role over)
    let leader = await settled();
    for (let i = 0; leader.id !== l.id && i < 8; i++) {
      await nodes.get(leader.id)!.proc.stop();
      nodes.set(leader.id, startHerdOn(bed, leader.id, [], ENV));
      leader = await settled();
    }
    expect(leader.id, 'the first coordinator never led again').toBe(l.id);
    const m = await waitFor('the record settled', async () => {
      const x = await record(l.address, herdId, id).catch(() => undefined);
      return x && x.state !== 'PENDING' ? x : undefined;
    }, 20_000, 200);
    expect(m.state, m.reason).toBe('ROLLED_BACK');
    expect(m.reason).toMatch(new RegExp(`^never started: the command did not reach ${source} before the coordinator that sent it stepped down or died \\(asked in term \\d+\\); the container stayed where it was$`));
    expect(m.source_node_id).toBe(source);
    expect(await runsOn('orphan')).toEqual([source]);
    // no longer "already migrating": it moves
    const again = await migrate(l.address, herdId, target, 'FS_MODE_DIFF', 60_000);
    expect(again.error, JSON.stringify(again.error)).toBeUndefined();
    expect(again.last.state, again.last.reason).toBe('SUCCEEDED');
    expect(await runsOn('orphan')).toEqual([target]);
  }, 240_000);
});
