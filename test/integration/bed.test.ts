// The test bed itself, for real: 3 netns nodes with their own dockerd, reachability, a container,
// CRIU, partitions. Nothing here skips: a missing dockerd, criu or busybox must fail the run.
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, run, startBed, stopBed, type Bed } from '../bed/bed';

const ping = (bed: Bed, from: string, to: string) => bed.exec(from, 'busybox', ['ping', '-c', '1', '-W', '1', bed.node(to).ip]);
const bedNetns = async () => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => /^herd-(n\d+|hub)$/.test(n));

function tcpRead(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, timeout: 3000 });
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve(data));
    s.on('timeout', () => { s.destroy(); reject(new Error(`timeout connecting to ${host}:${port}`)); });
    s.on('error', reject);
  });
}

describe('test bed: 3 nodes with docker', () => {
  let bed: Bed;
  let startError: unknown;

  beforeAll(async () => {
    const t0 = Date.now();
    try {
      bed = await startBed({ nodes: 3, docker: true });
    } catch (e) {
      startError = e;
      return;
    }
    console.log(`bed of 3 nodes with docker started in ${Date.now() - t0} ms`);
  });

  // a bed that cannot start fails every test (vitest would only mark them skipped)
  beforeEach(() => {
    if (startError) throw startError;
  });

  afterAll(async () => {
    await bed?.stop();
  });

  it('gives every node its own netns, address and answering dockerd', async () => {
    expect(bed.nodes.map((n) => [n.id, n.ip, n.netns])).toEqual([
      ['n1', '10.77.0.11', 'herd-n1'], ['n2', '10.77.0.12', 'herd-n2'], ['n3', '10.77.0.13', 'herd-n3'],
    ]);
    for (const n of bed.nodes) {
      const v = await bed.docker(n.id, 'version', '--format', '{{.Server.Version}} {{.Server.Experimental}}');
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout.trim()).toMatch(/^20\.10\.\d+.* true$/);
      const addr = await bed.exec(n.id, 'ip', ['-o', '-4', 'addr', 'show', 'eth0']);
      expect(addr.stdout).toContain(`${n.ip}/24`);
      const img = await bed.docker(n.id, 'image', 'inspect', '-f', '{{.Id}}', BUSYBOX_IMAGE);
      expect(img.code, img.stderr).toBe(0);
    }
    // dockerds are separate daemons: one node's containers are not another's
    const infos = await Promise.all(bed.nodes.map((n) => bed.docker(n.id, 'info', '--format', '{{.ID}}')));
    expect(new Set(infos.map((i) => i.stdout.trim())).size).toBe(3);
  });

  it('connects every node with every other and with the host', async () => {
    for (const [a, b] of [['n1', 'n3'], ['n3', 'n1'], ['n2', 'n1'], ['n1', 'n2']]) {
      const r = await ping(bed, a, b);
      expect(r.code, `${a} -> ${b}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    // a TCP server spawned (and pid-tracked) in n3, read from n1 and from the host namespace
    const srv = bed.spawn('n3', process.execPath, ['-e',
      `require('net').createServer((s) => s.end('hello from ' + process.argv[1])).listen(7000, '10.77.0.13', () => console.log('listening'))`, 'n3'],
      { name: 'tcp-echo' });
    expect(fs.existsSync(`${bed.node('n3').dir}/pids/tcp-echo.json`)).toBe(true);
    await expect.poll(() => srv.log(), { timeout: 10_000 }).toContain('listening');
    const client = `require('net').connect(7000, '10.77.0.13').on('data', (d) => process.stdout.write(d))`;
    const r = await bed.exec('n1', process.execPath, ['-e', client]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hello from n3');
    expect(await tcpRead('10.77.0.13', 7000)).toBe('hello from n3');
    await srv.stop();
    expect((await srv.exited).signal).toBe('SIGTERM');
  });

  it('runs a busybox container on node 2, and CRIU checkpoints and restores it', async () => {
    const criu = await bed.exec('n2', 'criu', ['check']);
    expect(criu.stdout + criu.stderr).toContain('Looks good');
    const run2 = await bed.docker('n2', 'run', '-d', '--name', 'bedtest', BUSYBOX_IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done');
    expect(run2.code, run2.stderr).toBe(0);
    const st = await bed.docker('n2', 'inspect', '-f', '{{.State.Running}}', 'bedtest');
    expect(st.stdout.trim()).toBe('true');
    expect((await bed.docker('n1', 'ps', '-q')).stdout.trim()).toBe(''); // not on node 1
    // through dockerd -> containerd -> runc -> the criu 4.2 wrapper found in the inherited PATH
    const cp = await bed.docker('n2', 'checkpoint', 'create', 'bedtest', 'cp1');
    expect(cp.code, cp.stderr).toBe(0);
    const id = (await bed.docker('n2', 'inspect', '-f', '{{.Id}}', 'bedtest')).stdout.trim();
    // restoring on the daemon that made the checkpoint needs a unique blob (docs/testbed.md)
    fs.writeFileSync(`${bed.node('n2').dir}/data/containers/${id}/checkpoints/cp1/herd-nonce`, String(process.hrtime.bigint()));
    const leaks = () => new Set(fs.readdirSync('/tmp').filter((f) => f.startsWith('ctrd-checkpoint')));
    const before = leaks();
    const rs = await bed.docker('n2', 'start', '--checkpoint', 'cp1', 'bedtest');
    // containerd 1.6 leaves a copy of every restored checkpoint in /tmp (docs/testbed.md)
    for (const f of leaks()) if (!before.has(f)) fs.rmSync(`/tmp/${f}`, { recursive: true, force: true });
    expect(rs.code, rs.stderr).toBe(0);
    expect((await bed.docker('n2', 'inspect', '-f', '{{.State.Running}}', 'bedtest')).stdout.trim()).toBe('true');
  });

  it('isolates a node and heals it', async () => {
    await bed.isolate('n2');
    const cut = await ping(bed, 'n1', 'n2');
    expect(cut.code).not.toBe(0);
    expect((await ping(bed, 'n2', 'n3')).code).not.toBe(0);
    expect((await ping(bed, 'n1', 'n3')).code).toBe(0); // the others still see each other
    await bed.heal('n2');
    const back = await ping(bed, 'n1', 'n2');
    expect(back.code, back.stdout + back.stderr).toBe(0);
  });

  it('stop() removes the namespaces, processes and mounts it made, from the pid files alone', async () => {
    const dockerd = JSON.parse(fs.readFileSync(`${bed.node('n1').dir}/pids/dockerd.json`, 'utf8')) as { pid: number };
    const sleeper = bed.spawn('n3', 'sh', ['-c', 'sleep 600 & sleep 600'], { name: 'sleeper' });
    const t0 = Date.now();
    // stopBed() knows nothing of this Bed object: it is what the next run does after a crash
    await stopBed();
    console.log(`bed stopped in ${Date.now() - t0} ms`);
    expect(await bedNetns()).toEqual([]);
    expect(fs.existsSync(`/proc/${dockerd.pid}`)).toBe(false);
    expect((await sleeper.exited).signal).toBe('SIGTERM');
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(bed.dir + '/');
    expect(fs.existsSync('/sys/fs/cgroup/pids/herd-n2')).toBe(false); // the busybox container's parent
    expect(fs.existsSync(`${bed.node('n1').dir}/dockerd.log`)).toBe(true); // logs stay for a post-mortem
    await bed.stop(); // idempotent
  });
});
