import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DockerTracker, herdIdOf } from '../../agent/docker';
import type { Container } from '../../common/types';

const ID_A = 'c951790de4bda45318b4757d1eaf741a2718d6641b3a91026d446dd0ffd99956';
const ID_B = 'bb95c91f4614fa4c3a67f36b88e6885802706a00e2826b4197bdfd2d4d0040fe';
const ID_C = '550a3994817e531d01a9507e065a2677c141495b9d847d2a914a47aadfd4aa16';

interface FakeCtr {
  id: string;
  name: string;
  state: string;
  pid: number;
  labels: Record<string, string>;
  tty?: boolean;
}

/** The part of dockerode the tracker uses: listContainers and getContainer().inspect(). */
class FakeDocker {
  ctrs = new Map<string, FakeCtr>();
  inspects: string[] = [];
  lists = 0;
  vanishOnInspect = new Set<string>();
  add(c: FakeCtr) {
    this.ctrs.set(c.id, c);
  }
  async listContainers(opts: { all?: boolean }) {
    this.lists++;
    expect(opts.all).toBe(true);
    await new Promise((r) => setTimeout(r, 5));
    return [...this.ctrs.values()].map((c) => ({
      Id: c.id,
      Names: [`/${c.name}`],
      Image: 'sysbench:local',
      State: c.state,
      Labels: c.labels,
      Created: 1795533219,
    }));
  }
  getContainer(id: string) {
    return {
      inspect: async () => {
        this.inspects.push(id);
        const c = this.ctrs.get(id);
        if (!c || this.vanishOnInspect.has(id)) throw Object.assign(new Error('no such container'), { statusCode: 404 });
        return { Created: '2026-11-24T16:45:01.123456789Z', State: { Pid: c.pid }, Config: { Labels: c.labels, Tty: Boolean(c.tty) } };
      },
    };
  }
}

let logs: string[] = [];
beforeEach(() => {
  logs = [];
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).includes('[docker]')) logs.push(String(chunk));
    return write(chunk, ...(rest as []));
  });
});
afterEach(() => vi.restoreAllMocks());

describe('herdIdOf', () => {
  it('uses the herd.id label, else the first 12 hex digits of the Docker id', () => {
    expect(herdIdOf(ID_A, { 'herd.id': 'oltp-server' })).toBe('oltp-server');
    expect(herdIdOf(ID_A, {})).toBe('c951790de4bd');
    expect(herdIdOf(ID_A, undefined)).toBe('c951790de4bd');
    expect(herdIdOf(ID_A, { 'herd.id': '  ' })).toBe('c951790de4bd');
  });
});

describe('DockerTracker with a fake engine', () => {
  function setup() {
    const fake = new FakeDocker();
    const tracker = new DockerTracker({ socketPath: '/fake.sock', nodeId: 'n1', docker: fake as unknown as Dockerode });
    const changes: Container[][] = [];
    tracker.onChange((l) => changes.push(l));
    return { fake, tracker, changes };
  }

  it('lists running and stopped containers with herd ids, pids, labels and names', async () => {
    const { fake, tracker } = setup();
    fake.add({ id: ID_A, name: 'bench', state: 'running', pid: 4242, labels: { 'herd.id': 'h-bench', 'herd.ops.regex': 'x' } });
    fake.add({ id: ID_B, name: 'old', state: 'exited', pid: 0, labels: {} });
    const list = await tracker.refresh();
    expect(list).toEqual([
      {
        herdId: 'h-bench',
        dockerId: ID_A,
        name: 'bench',
        image: 'sysbench:local',
        state: 'running',
        pid: 4242,
        labels: { 'herd.id': 'h-bench', 'herd.ops.regex': 'x' },
        createdMs: Date.parse('2026-11-24T16:45:01.123Z'),
        cpuLimit: 0, // no HostConfig limits: none
        memoryLimitBytes: 0,
      },
      expect.objectContaining({ herdId: 'bb95c91f4614', state: 'exited', pid: 0 }),
    ]);
    expect(tracker.containers()).toBe(list);
    expect(tracker.reachable).toBe(true);
    expect(tracker.docker).toBe(fake);
    expect(tracker.tty(ID_A)).toBe(false);
  });

  it('inspects only new containers and state changes; fires onChange only on a change', async () => {
    const { fake, tracker, changes } = setup();
    fake.add({ id: ID_A, name: 'a', state: 'running', pid: 100, labels: {} });
    await tracker.refresh();
    await tracker.refresh();
    expect(fake.inspects).toEqual([ID_A]);
    expect(changes).toHaveLength(1);

    fake.ctrs.get(ID_A)!.state = 'exited';
    fake.ctrs.get(ID_A)!.pid = 0;
    await tracker.refresh();
    expect(changes).toHaveLength(2);
    expect(changes[1][0]).toMatchObject({ state: 'exited', pid: 0 });

    fake.ctrs.get(ID_A)!.state = 'running';
    fake.ctrs.get(ID_A)!.pid = 200;
    fake.add({ id: ID_B, name: 'b', state: 'created', pid: 0, labels: {} });
    await tracker.refresh();
    expect(changes).toHaveLength(3);
    expect(changes[2].map((c) => [c.name, c.state, c.pid])).toEqual([
      ['a', 'running', 200],
      ['b', 'created', 0],
    ]);
    expect(fake.inspects).toEqual([ID_A, ID_A, ID_A, ID_B]);

    fake.ctrs.delete(ID_A);
    await tracker.refresh();
    expect(changes).toHaveLength(4);
    expect(changes[3].map((c) => c.name)).toEqual(['b']);
    await tracker.refresh();
    expect(changes).toHaveLength(4);
  });

  it('drops a container removed between list and inspect', async () => {
    const { fake, tracker } = setup();
    fake.add({ id: ID_A, name: 'a', state: 'running', pid: 1, labels: {} });
    fake.add({ id: ID_C, name: 'gone', state: 'running', pid: 2, labels: {} });
    fake.vanishOnInspect.add(ID_C);
    expect((await tracker.refresh()).map((c) => c.name)).toEqual(['a']);
  });

  it('shares one listing between concurrent refreshes', async () => {
    const { fake, tracker } = setup();
    fake.add({ id: ID_A, name: 'a', state: 'running', pid: 1, labels: {} });
    const [x, y] = await Promise.all([tracker.refresh(), tracker.refresh()]);
    expect(x).toBe(y);
    expect(fake.lists).toBe(1);
  });

  it('survives a throwing onChange listener', async () => {
    const { fake, tracker } = setup();
    tracker.onChange(() => {
      throw new Error('listener bug');
    });
    fake.add({ id: ID_A, name: 'a', state: 'running', pid: 1, labels: {} });
    await expect(tracker.refresh()).resolves.toHaveLength(1);
  });
});

describe('DockerTracker on a real socket path', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herd-docker-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('nonexistent socket: [] and reachable=false, one warning; recovers once a daemon answers', async () => {
    const sock = join(dir, 'docker.sock');
    const tracker = new DockerTracker({ socketPath: sock, nodeId: 'n1' });
    const changes: Container[][] = [];
    tracker.onChange((l) => changes.push(l));
    for (let i = 0; i < 3; i++) {
      await expect(tracker.refresh()).resolves.toEqual([]);
      expect(tracker.reachable).toBe(false);
    }
    const warns = logs.filter((l) => l.includes('WARN'));
    expect(warns).toHaveLength(1);
    expect(warns[0]).toContain(`socket=${sock}`);
    expect(warns[0]).toContain('ENOENT');
    expect(tracker.containers()).toEqual([]);

    // a minimal Docker API on that socket path
    const server = http.createServer((req, res) => {
      if (req.url?.startsWith('/containers/json')) return res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      res.writeHead(404).end('{}');
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      await expect(tracker.refresh()).resolves.toEqual([]);
      expect(tracker.reachable).toBe(true);
      expect(logs.filter((l) => l.includes('reachable again'))).toHaveLength(1);
      await tracker.refresh();
      expect(logs.filter((l) => l.includes('reachable again'))).toHaveLength(1);
      expect(logs.filter((l) => l.includes('WARN'))).toHaveLength(1);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a daemon that does not answer: refresh gives up after its timeout', async () => {
    const sock = join(dir, 'hung.sock');
    const server = http.createServer(() => {}); // accepts, never answers
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const tracker = new DockerTracker({ socketPath: sock, nodeId: 'n1', timeoutMs: 200 });
      const t0 = Date.now();
      await expect(tracker.refresh()).resolves.toEqual([]);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(tracker.reachable).toBe(false);
      expect(logs.filter((l) => l.includes('WARN'))[0]).toContain('timed out');
      // the wait backed off, saying so once per change; the next refresh waits twice as long
      expect(tracker.timeoutMs).toBe(400);
      expect(logs.filter((l) => l.includes('each call may take up to 400 ms from now on'))).toHaveLength(1);
      const t1 = Date.now();
      await tracker.refresh();
      expect(Date.now() - t1).toBeGreaterThanOrEqual(390);
      expect(tracker.timeoutMs).toBe(800);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
