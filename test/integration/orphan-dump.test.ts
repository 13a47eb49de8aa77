/**
 * The source's agent killed -9 while its own dump of the container still runs, on real
 * processes (herd, dockerd, containerd, runc, CRIU on three bed nodes). The dump runs in
 * containerd's shim, not in herd, so it outlives the agent. To hold it at a known point the
 * test stops runc's `checkpoint` process (SIGSTOP) the moment it appears, kills the agent,
 * and restarts it:
 * - the restarted agent waits for the leftover dump instead of judging the container by
 *   Docker's "running"; the test lets the dump go on (SIGCONT), it completes, and the rollback
 *   restores the container from that checkpoint (or, after a page-server dump that left it
 *   stopped, thaws it): ROLLED_BACK, the counter goes on from where it was, it runs once;
 * - a dump that does not end within the agent's bound (here 1 s, HERD_FAULTS) is killed, and
 *   the container, never stopped by it, goes on where it stands.
 * Without the wait, the first case ended with a container running nowhere: "restored" while
 * the dump still ran, then stopped by it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { imageTmpfsEntries } from '../bed/diskfull';
import { alive, dumpProcesses, listProcs } from '../../agent/migration/orphan-dump';
import { adminClient, agreedLeader, kill9, settledWithCriu, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
const stopped: number[] = [];
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'ne6', subnet: 206 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  await settled();
});

afterAll(async () => {
  for (const pid of stopped.splice(0)) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

const addresses = () => [...nodes.values()].map((n) => n.address);

const settled = () => settledWithCriu(addresses());

async function counts(node: string, name: string): Promise<number[]> {
  return (await bed.docker(node, 'logs', name)).stdout.trim().split('\n').map(Number);
}

async function runsOn(name: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of bed.nodes) if ((await bed.docker(n.id, 'ps', '--format', '{{.Names}}')).stdout.split('\n').includes(name)) out.push(n.id);
  return out;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** The pids of a process's children (every thread's). */
function children(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/**
 * Stops the container's dump the moment runc's `checkpoint` appears under the container's
 * shim (polled every few ms), and whatever runs under it; answers the stopped pids.
 */
async function holdDump(dockerId: string, timeoutMs: number): Promise<number[]> {
  const shim = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => ({ pid: Number(d), args: cmdline(Number(d)) }))
    .find((p) => /containerd-shim/.test(p.args[0] ?? '') && p.args.includes(dockerId));
  expect(shim, `no containerd shim for ${dockerId}`).toBeDefined();
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    for (const pid of children(shim!.pid)) {
      if (!cmdline(pid).includes('checkpoint')) continue;
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
      // CRIU, if runc had started it already
      for (const c of dumpProcesses(listProcs(), dockerId).filter((p) => p !== pid)) {
        process.kill(c, 'SIGSTOP');
        stopped.push(c);
      }
      return [...stopped];
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`no dump of ${dockerId} within ${timeoutMs} ms`);
}

/** Starts a counter on the source, migrates it, holds its dump, kills the source's agent -9 and restarts it with env. */
async function killedDuringDump(name: string, env: NodeJS.ProcessEnv) {
  const l = await settled();
  const [source, target] = bed.nodes.map((n) => n.id).filter((id) => id !== l.id);
  const r = await bed.docker(source, 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
  expect(r.code, r.stderr).toBe(0);
  const dockerId = r.stdout.trim();
  const herdId = dockerId.slice(0, 12);
  await waitFor(`${name} listed running`, async () => (await call(adminClient(l.address), 'ListContainers', { node_id: source })).containers.some((c: any) => c.herd_id === herdId && c.state === 'running'), 15_000, 100);
  await waitFor(`${name} counted to 20`, async () => (await counts(source, name)).length >= 20, 15_000, 100);
  const tmpfsBefore = new Set(imageTmpfsEntries(bed, source));
  const pending = migrate(l.address, herdId, target, 'FS_MODE_DIFF', 150_000);
  const held = await holdDump(dockerId, 30_000);
  const before = await counts(source, name);
  await kill9(nodes.get(source)!);
  nodes.set(source, startHerdOn(bed, source, [], env));
  await waitFor('the restarted agent finds the dump still running', async () => nodes.get(source)!.proc.log().includes('a checkpoint of the container is still running'), 60_000, 100);
  return { leader: l, source, target, herdId, pending, held, before, tmpfsBefore };
}

/** The migration's record once ended, from whoever coordinates. */
async function ended(herdId: string): Promise<any> {
  return waitFor('the migration ended', async () => {
    const now = await agreedLeader(addresses(), 3_000);
    const m = (await call(adminClient(now.address), 'ListMigrations', { herd_id: herdId })).migrations[0];
    return m && ['SUCCEEDED', 'ROLLED_BACK', 'FAILED'].includes(m.state) ? m : undefined;
  }, 90_000, 250);
}

/** Runs once, on the source, counting on from before the dump (never from 1 again); nothing left behind. */
async function wholeOnSource(name: string, k: Awaited<ReturnType<typeof killedDuringDump>>): Promise<void> {
  expect(await runsOn(name)).toEqual([k.source]);
  const last = k.before[k.before.length - 1];
  await waitFor(`${name} counting on past ${last}`, async () => (await counts(k.source, name)).pop()! > last + 5, 15_000, 200);
  const after = await counts(k.source, name);
  // one history, no value twice, no reset
  after.forEach((v, i) => expect(v, `line ${i} of ${name}'s log`).toBe(i + 1));
  expect((await bed.docker(k.target, 'ps', '-a', '--format', '{{.Names}}')).stdout.split('\n')).not.toContain(name);
  const dataDir = nodes.get(k.source)!.dataDir;
  expect(readdirSync(join(dataDir, 'migrations', 'out'))).toEqual([]);
  expect(imageTmpfsEntries(bed, k.source).filter((e) => !k.tmpfsBefore.has(e))).toEqual([]);
}

describe('the source agent killed -9 while its dump of the container still runs', () => {
  it('the restarted agent waits for the leftover dump, then restores the container from it: rolled back, counting on, once', async () => {
    const k = await killedDuringDump('od-wait', {});
    // meanwhile nothing is decided: the record is not ended, the container not touched
    await new Promise((r) => setTimeout(r, 1500));
    const now = await agreedLeader(addresses(), 10_000);
    const m = (await call(adminClient(now.address), 'ListMigrations', { herd_id: k.herdId })).migrations[0];
    expect(m.state, m.reason).toBe('RUNNING');
    // (CRIU may have gone on in a process forked after the hold, and ended the dump already)
    for (const pid of k.held) try { process.kill(pid, 'SIGCONT'); } catch { /* ended */ }
    stopped.splice(0);
    const last = await ended(k.herdId);
    expect(last.state, last.reason).toBe('ROLLED_BACK');
    expect(last.reason).toMatch(/^the source agent restarted during the migration; a checkpoint left running \(by a restart of this agent or a call that timed out\) ended \d+ ms later; the container was then (stopped|running)$/);
    // stopped: a direct dump completed and ended the task (restored from it); running: a page-server
    // dump (the default since x17) leaves the processes stopped until its second dump, which the
    // restart never made (thawed where they stand). Either way: once, counting on.
    await wholeOnSource('od-wait', k);
    // what the client that asked for the move saw
    expect((await k.pending).last?.state).toBe('ROLLED_BACK');
  }, 240_000);

  it('a leftover dump that outlasts the bound is killed; the container goes on where it stands', async () => {
    const k = await killedDuringDump('od-kill', { HERD_FAULTS: 'migration.orphan_dump_wait_ms=1000' });
    const last = await ended(k.herdId);
    stopped.splice(0); // killed by the agent
    expect(last.state, last.reason).toBe('ROLLED_BACK');
    expect(last.reason).toMatch(/^the source agent restarted during the migration; a checkpoint left running \(by a restart of this agent or a call that timed out\) did not end within 1000 ms and was killed( \(its freeze undone\))?; the container was then running$/);
    await waitFor('the killed dump gone', async () => k.held.every((pid) => !alive(pid)), 10_000, 100);
    await wholeOnSource('od-kill', k);
    expect((await k.pending).last?.state).toBe('ROLLED_BACK');
  }, 240_000);
});
