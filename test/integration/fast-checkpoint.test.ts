// The fast path for real (docs/runtime.md#fast-path): a checkpoint through the containerd that a
// bed node's dockerd started, into the agent's image tmpfs; restores through links to it; the
// fallback when that containerd cannot be reached. Bed "fc", subnet 131; nothing skips.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../agent/runtime/docker-runtime';
import { findContainerd } from '../../agent/runtime/containerd';
import { isTmpfs } from '../../agent/runtime/fast-checkpoint';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { tempDir } from '../helpers/tmp';

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const INSPECT = '{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Pid}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}} [{{.State.Error}}]';

describe('checkpoint straight through containerd, restore through links (bed fc)', () => {
  let bed: Bed;
  let startError: unknown;
  let rt1: DockerRuntime;
  let rt2: DockerRuntime;
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
      return;
    }
    rt1 = new DockerRuntime({ socketPath: bed.node('n1').dockerSock, keepLogsDir: path.join(work.dir, 'criu-logs') });
    rt2 = new DockerRuntime({ socketPath: bed.node('n2').dockerSock, keepLogsDir: path.join(work.dir, 'criu-logs') });
  });

  beforeEach(() => {
    if (startError) throw startError;
  });

  afterAll(async () => {
    await bed?.stop();
    work?.cleanup();
  });

  it('finds the containerd each dockerd started, and mounts an image tmpfs in its tmp dir', async () => {
    const loc = findContainerd(bed.node('n1').dockerSock);
    expect(loc).toEqual({ socket: path.join(bed.node('n1').dir, 'exec/containerd/containerd.sock'), tmpDir: '/tmp' });
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
