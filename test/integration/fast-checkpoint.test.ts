// The fast path for real (docs/runtime.md#fast-path): a checkpoint through the containerd that a
// bed node's dockerd started, into the agent's image tmpfs; restores through links to it; the
// fallback when that containerd cannot be reached. Bed "fc", subnet 131; nothing skips.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../agent/runtime/docker-runtime';
import { findContainerd } from '../../agent/runtime/containerd';
import { imageRootFor, isTmpfs } from '../../agent/runtime/fast-checkpoint';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { tempDir, waitFor } from '../helpers/tmp';

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const INSPECT = '{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Pid}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}} [{{.State.Error}}]';

let bed: Bed;
let startError: unknown;
let work: { dir: string; cleanup: () => void };

const dk = async (node: string, ...args: string[]) => {
  const r = await bed.docker(node, ...args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} on ${node}: ${r.stderr}`);
  return r.stdout.trim();
};
const last = async (node: string, name: string) => Number((await dk(node, 'logs', '--tail', '1', name)).split('\n').pop());
const events = async (node: string, id: string, since: string) =>
  (await dk(node, 'events', '--since', since, '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', `container=${id}`, '--format', '{{.Action}}'))
    .split('\n').filter(Boolean);

beforeAll(async () => {
  process.env.PATH = `/usr/local/sbin:${process.env.PATH ?? ''}`;
  work = tempDir('herd-fc-');
  try {
    bed = await startBed({ nodes: 2, docker: true, name: 'fc', subnet: 131 });
  } catch (e) {
    startError = e;
  }
});

// a bed that cannot start fails every test (vitest would only mark them skipped)
beforeEach(() => {
  if (startError) throw startError;
});

afterAll(async () => {
  await bed?.stop(); // also unmounts the agents' image tmpfs (they outlive the agents, as on a real node)
  expect(bed ? fs.existsSync(imageRootFor(bed.node('n1').dockerSock, '/tmp')) : false).toBe(false);
  work?.cleanup();
});

describe('checkpoint straight through containerd, restore through links (bed fc)', () => {
  let rt1: DockerRuntime;
  let rt2: DockerRuntime;

  beforeAll(() => {
    if (startError) return;
    rt1 = new DockerRuntime({ socketPath: bed.node('n1').dockerSock, keepLogsDir: path.join(work.dir, 'criu-logs') });
    rt2 = new DockerRuntime({ socketPath: bed.node('n2').dockerSock, keepLogsDir: path.join(work.dir, 'criu-logs') });
  });

  it('finds the containerd each dockerd started, and mounts an image tmpfs in its tmp dir', async () => {
    const loc = findContainerd(bed.node('n1').dockerSock);
    expect(loc).toEqual({ socket: path.join(bed.node('n1').dir, 'exec/containerd/containerd.sock'), tmpDir: '/tmp', runcRoot: path.join(bed.node('n1').dir, 'exec/runtime-runc/moby') });
    const f = await rt1.fastPath();
    expect(f.ok, f.ok ? '' : f.reason).toBe(true);
    const f2 = await rt2.fastPath();
    if (!f.ok || !f2.ok) return;
    expect(isTmpfs(f.imageRoot)).toBe(true);
    expect(path.dirname(f.imageRoot)).toBe('/tmp');
    expect(f2.imageRoot).not.toBe(f.imageRoot); // one per engine: the bed's nodes share /tmp
  });

  it("leaves Docker's view as `docker checkpoint create` does: exited 137, restart policy held, no restart", async () => {
    // the same container twice, one checkpointed by Docker's path, one by the direct one
    const views: Record<string, { inspect: string; events: string[]; method: string }> = {};
    const docker = new DockerRuntime({ socketPath: bed.node('n1').dockerSock, fastPath: false });
    for (const [mode, rt] of [['docker', docker], ['direct', rt1]] as const) {
      const id = await dk('n1', 'run', '-d', '--restart', 'always', '--name', `view-${mode}`, BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
      await sleep(400);
      const since = (Date.now() / 1000).toFixed(3);
      const cp = await rt.checkpoint(id, path.join(work.dir, `view-${mode}`), 'cp');
      await sleep(1500); // a restart policy that fired would show by now
      views[mode] = { inspect: await dk('n1', 'inspect', '-f', INSPECT, id), events: await events('n1', id, since), method: cp.method };
      if (mode === 'direct') {
        expect(isTmpfs(cp.dir)).toBe(true);
        expect(fs.existsSync(path.join(cp.dir, 'inventory.img'))).toBe(true);
        expect(fs.existsSync(`${cp.dir}.work`)).toBe(false); // CRIU's work dir (dump.log) removed after a good dump
        // the rollback: restored in place, the restart policy back, the counter going on
        const before = await last('n1', `view-${mode}`);
        const r = await rt.restoreFromDir(id, cp.dir, 'cp', { keepSource: true });
        expect(r.method).toBe('linked');
        expect(r.leaksRemoved).toBe(1); // containerd's /tmp/ctrd-checkpoint* copy (links only) removed
        await sleep(400);
        expect(await last('n1', `view-${mode}`)).toBeGreaterThan(before);
        expect(await dk('n1', 'inspect', '-f', '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}', id)).toBe('running always');
        // Docker's checkpoint dir (the links) is gone; the images stay, as keepSource asked
        expect(fs.readdirSync(path.join(await rt.dockerRootDir(), 'containers', id, 'checkpoints'))).toEqual([]);
        expect(fs.existsSync(path.join(cp.dir, 'inventory.img'))).toBe(true);
        fs.rmSync(cp.dir, { recursive: true });
      }
    }
    expect(views.docker.method).toBe('docker');
    expect(views.direct.method).toBe('containerd');
    expect(views.direct.inspect).toBe(views.docker.inspect);
    expect(views.direct.inspect).toBe('exited 137 false 0 0 no []');
    // the restart policy is switched off around the dump by both paths (update), the task dies once,
    // nothing starts it again; Docker's path adds its own pause and `checkpoint` notices
    expect(views.direct.events).toEqual(['update', 'die']);
    expect(views.docker.events).toContain('checkpoint');
    expect(views.docker.events.filter((e) => e !== 'pause' && e !== 'checkpoint')).toEqual(['update', 'die']);
  });

  it('moves the images to another node with no copy into Docker: staged on its tmpfs, restored through links', async () => {
    const id = await dk('n1', 'run', '-d', '--name', 'mover', BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
    await sleep(500);
    const cp = await rt1.checkpoint(id, path.join(work.dir, 'mover'), 'cp');
    const before = await last('n1', 'mover');
    const targetId = await rt2.create((await rt1.inspect(id)).createSpec, 'mover');
    const staged = await rt2.stagingDir('m-mover');
    expect(staged).toBeDefined();
    if (!staged) return;
    fs.cpSync(cp.dir, staged, { recursive: true }); // the transfer's stand-in (tested end to end with agents)
    const r = await rt2.restoreFromDir(targetId, staged, 'cp');
    expect(r.method).toBe('linked');
    await sleep(500);
    expect(await last('n2', 'mover')).toBeGreaterThan(before);
    expect(fs.existsSync(staged)).toBe(false); // consumed: the tmpfs holds nothing for a running container
    fs.rmSync(cp.dir, { recursive: true });
  });

  it('falls back to Docker when containerd cannot be reached, and says why; tcp-established then refuses', async () => {
    const sock = path.join(bed.node('n1').dir, 'exec/containerd/containerd.sock');
    const id = await dk('n1', 'run', '-d', '--name', 'fallback', BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
    await sleep(400);
    // dockerd keeps its own connection; a new client finds no socket
    fs.renameSync(sock, `${sock}.hidden`);
    try {
      const rt = new DockerRuntime({ socketPath: bed.node('n1').dockerSock });
      await expect(rt.checkpoint(id, path.join(work.dir, 'fb1'), 'cp', { tcpEstablished: true })).rejects.toMatchObject({
        code: 'FAILED_PRECONDITION', message: expect.stringMatching(/TCP connections.*direct path is not available/),
      });
      expect(await dk('n1', 'inspect', '-f', '{{.State.Status}}', id)).toBe('running');
      const cp = await rt.checkpoint(id, path.join(work.dir, 'fb2'), 'cp');
      expect(cp.method).toBe('docker');
      expect(cp.fallbackReason).toMatch(/containerd at .*containerd\.sock cannot be used/);
      expect(cp.dir).toBe(path.join(work.dir, 'fb2', 'cp'));
      const r = await rt.restoreFromDir(id, cp.dir, 'cp');
      expect(r.method).toBe('placed');
    } finally {
      fs.renameSync(`${sock}.hidden`, sock);
    }
    expect(await dk('n1', 'inspect', '-f', '{{.State.Status}}', id)).toBe('running');
  });
});

describe('migrations through herd agents (bed fc)', () => {
  const nodes = new Map<string, HerdNode>();
  let coordinator = '';
  let proxy: net.Server | undefined;

  async function restartWith(id: string, extra: string[]): Promise<void> {
    await nodes.get(id)?.proc.stop();
    nodes.set(id, startHerdOn(bed, id, extra));
    coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
    await waitFor(`${id} with criu`, async () => {
      coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
      return (await call(adminClient(coordinator), 'ListNodes', {})).nodes.find((n: any) => n.node_id === id && n.capabilities.includes('criu')) && (await connectedNodes(coordinator)).includes(id);
    }, 60_000, 200);
  }

  async function runOn(node: string, name: string, args: string[], cmd = COUNTER): Promise<string> {
    const herdId = (await dk(node, 'run', '-d', '--name', name, ...args, BUSYBOX_IMAGE, 'sh', '-c', cmd)).slice(0, 12);
    await waitFor(`${name} listed`, async () => (await call(adminClient(coordinator), 'ListContainers', { node_id: node })).containers.some((c: any) => c.herd_id === herdId && c.state === 'running'), 15_000, 100);
    return herdId;
  }

  /**
   * Admin.Migrate's stream, and when it breaks (a coordinator change on a loaded machine ends it
   * without the last record) the record as ListMigrations has it once final.
   */
  async function migrateTo(herdId: string, target: string, tcpEstablished = false): Promise<any> {
    const r = await migrate(coordinator, herdId, target, 'FS_MODE_DIFF', 60_000, tcpEstablished);
    if (r.last && ['SUCCEEDED', 'ROLLED_BACK', 'FAILED'].includes(r.last.state)) return r.last;
    const id = r.records[0]?.migration_id;
    return waitFor('the migration recorded as finished', async () => {
      coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
      const m = (await call(adminClient(coordinator), 'ListMigrations', { herd_id: herdId })).migrations.find((x: any) => x.migration_id === id);
      return m && ['SUCCEEDED', 'ROLLED_BACK', 'FAILED'].includes(m.state) ? m : undefined;
    }, 60_000, 500);
  }

  const imageFiles = async (node: string) => {
    const f = await new DockerRuntime({ socketPath: bed.node(node).dockerSock }).fastPath();
    return f.ok ? fs.readdirSync(f.imageRoot) : ['(no image tmpfs)'];
  };

  beforeAll(async () => {
    if (startError) return;
    for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
    coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
    await waitFor('both agents with criu', async () => {
      coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address; // it may change on a loaded machine
      return (await call(adminClient(coordinator), 'ListNodes', {})).nodes.filter((n: any) => n.capabilities.includes('criu')).length === 2;
    }, 60_000, 200);
  });

  afterAll(async () => {
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    proxy?.close();
  });

  it('moves a container holding 100 MB of memory on the fast path: record says page-server (above the default 64 MB) + linked, no image left anywhere', async () => {
    const herdId = await runOn('n1', 'mem', [], `x=$(head -c 100000000 /dev/zero | tr '\\0' a); ${COUNTER}`);
    await waitFor('memory filled', async () => (await last('n1', 'mem')) > 0, 60_000, 200);
    const before = await last('n1', 'mem');
    const m = await migrateTo(herdId, 'n2');
    expect(m.state, m.reason).toBe('SUCCEEDED');
    // a TLS cluster: the pages went to the target's page server as CRIU dumped them, not through Transfer
    expect(m).toMatchObject({ checkpoint_method: 'page-server', checkpoint_fallback_reason: '', restore_method: 'linked', tcp_established: false });
    expect(m.page_path).toMatch(/^page server: \d+ MB in use >= 64 MB$/);
    expect(Number(m.bytes_total)).toBeLessThan(16e6);
    await sleep(400);
    expect(await last('n2', 'mem')).toBeGreaterThan(before);
    expect(Number(await dk('n2', 'inspect', '-f', '{{.State.Pid}}', 'mem'))).toBeGreaterThan(0);
    // the images lived on the tmpfs only, and are gone from both once the source copy is removed
    await waitFor('source copy removed', async () => (await bed.docker('n1', 'ps', '-aq', '--filter', 'name=^mem$')).stdout.trim() === '', 10_000, 100);
    await waitFor('image tmpfs empty on both nodes', async () => (await imageFiles('n1')).length === 0 && (await imageFiles('n2')).length === 0, 10_000, 100);
    expect(fs.readdirSync(path.join(nodes.get('n1')!.dataDir, 'migrations', 'out'))).toEqual([]);
  }, 120_000);

  it('moves a small container with the one direct dump (below the default 64 MB), and the record says why', async () => {
    const herdId = await runOn('n1', 'small', []);
    await sleep(300);
    const before = await last('n1', 'small');
    const m = await migrateTo(herdId, 'n2');
    expect(m.state, m.reason).toBe('SUCCEEDED');
    expect(m).toMatchObject({ checkpoint_method: 'containerd', checkpoint_fallback_reason: '', restore_method: 'linked' });
    expect(m.page_path).toMatch(/^direct: \d+ MB in use < 64 MB$/);
    await sleep(400);
    expect(await last('n2', 'small')).toBeGreaterThan(before);
    await dk('n2', 'rm', '-f', 'small');
  }, 120_000);

  it('keeps an established TCP connection across the move with tcp_established (CRIU tcp-established on dump and restore)', async () => {
    // The test process is the container's peer, at the bed's host address. The container's network
    // is routed, not masqueraded, so the connection's addresses do not depend on the node it runs on;
    // the host's route to it is switched to the target once it runs there (what a router would do).
    for (const n of ['n1', 'n2']) await dk(n, 'network', 'create', '--subnet', '172.30.9.0/24', '-o', 'com.docker.network.bridge.enable_ip_masquerade=false', 'tcpnet');
    execFileSync('ip', ['route', 'replace', '172.30.9.0/24', 'via', bed.node('n1').ip]);
    const got: number[] = [];
    let conns = 0;
    let ended = '';
    const server = net.createServer((sock) => {
      conns++;
      let rest = '';
      sock.on('data', (d) => {
        const lines = (rest + String(d)).split('\n');
        rest = lines.pop() ?? '';
        got.push(...lines.filter(Boolean).map(Number));
      });
      sock.on('error', (e) => { ended ||= e.message; });
      sock.on('close', () => { ended ||= 'closed'; });
    }).listen(9931, bed.hostIp);
    try {
      const herdId = await runOn('n1', 'tcpc', ['--network', 'tcpnet', '--ip', '172.30.9.10'], `i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done | nc ${bed.hostIp} 9931`);
      await waitFor('numbers over the connection', () => got.length > 5, 15_000, 100);
      // without the option CRIU refuses the dump; the container stays, its connection too
      const refused = await migrateTo(herdId, 'n2', false);
      expect(refused.state).toBe('ROLLED_BACK');
      expect(refused.reason).toMatch(/tcp-established/);
      const m = await migrateTo(herdId, 'n2', true);
      expect(m.state, m.reason).toBe('SUCCEEDED');
      // not through the page server: that dump leaves the source stopped with the connection's socket
      expect(m).toMatchObject({ tcp_established: true, checkpoint_method: 'containerd', restore_method: 'linked' });
      execFileSync('ip', ['route', 'replace', '172.30.9.0/24', 'via', bed.node('n2').ip]);
      const n = got.length;
      await waitFor('more numbers on the same connection, from n2', () => got.length > n + 10, 20_000, 100);
      expect(await dk('n2', 'inspect', '-f', '{{.State.Status}}', 'tcpc')).toBe('running');
      expect(conns).toBe(1); // never reconnected
      expect(ended).toBe(''); // no reset, no close
      expect(got.every((v, i) => i === 0 || v === got[i - 1] + 1)).toBe(true); // nothing lost, nothing twice
      expect(fs.existsSync('/etc/criu/runc.conf') && fs.readFileSync('/etc/criu/runc.conf', 'utf8').includes('tcp-established')).toBe(false); // only for that restore
    } finally {
      server.close();
      execFileSync('ip', ['route', 'del', '172.30.9.0/24']);
    }
  }, 120_000);

  it('falls back to Docker on a node whose containerd it cannot find (Docker through a proxy socket), and the record says why', async () => {
    const viaProxy = path.join(work.dir, 'docker-proxy.sock');
    proxy = net.createServer((c) => {
      const up = net.connect(bed.node('n1').dockerSock);
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    }).listen(viaProxy);
    await restartWith('n1', ['--docker-socket', viaProxy]);
    const herdId = await runOn('n1', 'fb', []);
    await sleep(400);
    const before = await last('n1', 'fb');
    const m = await migrateTo(herdId, 'n2');
    expect(m.state, m.reason).toBe('SUCCEEDED');
    expect(m.checkpoint_method).toBe('docker');
    expect(m.checkpoint_fallback_reason).toMatch(/no dockerd on this host serves .*docker-proxy\.sock/);
    expect(m.restore_method).toBe('linked'); // the target still has its tmpfs
    await sleep(400);
    expect(await last('n2', 'fb')).toBeGreaterThan(before);
    await restartWith('n1', []);
  }, 120_000);
});
