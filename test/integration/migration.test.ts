/**
 * Live migration with real dockerd + CRIU on the test bed, through the Admin API of a
 * real herd cluster: state continues, files follow, identity and history follow; every
 * rollback path by fault injection; bad requests refused without touching anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { waitFor } from '../helpers/tmp';
import { HERD, runCmd } from '../helpers/herd';
import { testPki } from '../helpers/pki';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
let coordinator = '';

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'mig' });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
  await waitFor('3 agents streaming', async () => (await connectedNodes(coordinator)).length === 3, 30_000, 100);
  await waitFor('criu capability everywhere', async () => {
    const r = await call(adminClient(coordinator), 'ListNodes', {});
    return r.nodes.every((n: any) => n.capabilities.includes('criu'));
  }, 20_000, 200);
});

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

/** Starts a container on a node and waits for the coordinator to list it; returns its herd id. */
async function runOn(node: string, name: string, args: string[], cmd = COUNTER): Promise<string> {
  const r = await bed.docker(node, 'run', '-d', '--name', name, ...args, BUSYBOX_IMAGE, 'sh', '-c', cmd);
  expect(r.code, r.stderr).toBe(0);
  const herdId = r.stdout.trim().slice(0, 12);
  await waitFor(`${name} listed`, async () => (await call(adminClient(coordinator), 'ListContainers', { node_id: node })).containers.some((c: any) => c.herd_id === herdId && c.state === 'running'), 15_000, 100);
  return herdId;
}

async function lastLog(node: string, name: string): Promise<number> {
  const r = await bed.docker(node, 'logs', '--tail', '1', name);
  return Number(r.stdout.trim().split('\n').pop());
}

describe('live migration', () => {
  it('moves a running counter with its files: the count continues on the target, the source is gone', async () => {
    const herdId = await runOn('n1', 'counter', []);
    expect((await bed.docker('n1', 'exec', 'counter', 'sh', '-c', 'echo written-on-n1 > /root/state.txt')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    const before = await lastLog('n1', 'counter');
    const r = await migrate(coordinator, herdId, 'n2');
    expect(r.error, JSON.stringify(r)).toBeUndefined();
    expect(r.last.state, r.last.reason).toBe('SUCCEEDED');
    expect(r.last.timings.map((t: any) => t.step)).toEqual(expect.arrayContaining(['PREPARE', 'CHECKPOINT', 'PACKAGE', 'TRANSFER', 'APPLY_FS', 'RESTORE', 'REMOVE_SOURCE']));
    expect(Number(r.last.downtime_ms)).toBeGreaterThan(0);
    // a TLS cluster with the image tmpfs, a container of a few MB (below pageServerMinBytes): the one direct dump
    expect(r.last.checkpoint_method, r.last.checkpoint_fallback_reason).toBe('containerd');
    expect(r.last.page_path).toMatch(/^direct: /);
    expect(r.last.restore_method).toBe('linked');
    await new Promise((r2) => setTimeout(r2, 500));
    const after = await lastLog('n2', 'counter');
    expect(after).toBeGreaterThan(before); // the counter did not restart from 1
    expect((await bed.docker('n2', 'exec', 'counter', 'cat', '/root/state.txt')).stdout.trim()).toBe('written-on-n1');
    // the log history came along: docker logs on n2 starts at 1
    expect((await bed.docker('n2', 'logs', 'counter')).stdout.split('\n')[0]).toBe('1');
    expect((await bed.docker('n1', 'ps', '-aq', '--filter', 'name=counter')).stdout.trim()).toBe('');
    const detail = await waitFor('history shows n1 then n2', async () => {
      const d = await call(adminClient(coordinator), 'GetContainer', { herd_id: herdId });
      return d.history.length === 2 ? d : undefined;
    }, 15_000, 200);
    expect(detail.history.map((v: any) => v.node_id)).toEqual(['n1', 'n2']);
    expect(detail.container).toMatchObject({ herd_id: herdId, node_id: 'n2' });
    // its samples follow it: the same series (keyed by herd id), now produced by n2
    await waitFor('samples from n2 under the same herd id', async () => {
      const series = (await call(adminClient(coordinator), 'ListSeries', { entity: herdId })).series;
      return series.some((x: any) => x.metric === 'container.pids' && x.node_id === 'n2');
    }, 15_000, 200);
    const list = await call(adminClient(coordinator), 'ListMigrations', { herd_id: herdId });
    expect(list.migrations[0]).toMatchObject({ migration_id: r.last.migration_id, state: 'SUCCEEDED' });
  });

  it('moves a container holding a file of its rootfs open (diff layer), and one without its files (none)', async () => {
    const writer = 'exec 3>>/root/open.log; i=0; while true; do i=$((i+1)); echo $i >&3; echo $i; sleep 0.1; done';
    const openId = await runOn('n1', 'openfile', [], writer);
    const r = await migrate(coordinator, openId, 'n3');
    expect(r.last.state, r.last.reason).toBe('SUCCEEDED');
    await new Promise((r2) => setTimeout(r2, 400));
    const lines = (await bed.docker('n3', 'exec', 'openfile', 'cat', '/root/open.log')).stdout.trim().split('\n').map(Number);
    expect(lines[0]).toBe(1);
    expect(lines.every((v, i) => i === 0 || v === lines[i - 1] + 1)).toBe(true); // one file, written on both nodes, no gap

    const noneId = await runOn('n1', 'nofs', []);
    await bed.docker('n1', 'exec', 'nofs', 'sh', '-c', 'echo x > /root/left-behind.txt');
    const n = await migrate(coordinator, noneId, 'n3', 'FS_MODE_NONE');
    expect(n.last.state, n.last.reason).toBe('SUCCEEDED');
    expect(n.last.fs_mode).toBe('FS_MODE_NONE');
    expect((await bed.docker('n3', 'exec', 'nofs', 'ls', '/root/left-behind.txt')).code).not.toBe(0);
  });

  it('moves the whole container filesystem in full mode, through the herd migrate CLI', async () => {
    const herdId = await runOn('n1', 'fullfs', []);
    await bed.docker('n1', 'exec', 'fullfs', 'sh', '-c', 'echo kept > /root/full.txt');
    const pki = testPki();
    const tls = ['--cacert', pki.caCert, '--cert', pki.adminCert, '--key', pki.adminKey];
    const cli = await runCmd(process.execPath, [HERD, 'migrate', herdId, '--to', 'n2', '--fs', 'full', '-s', coordinator, ...tls], 120_000);
    expect(cli.code, cli.stderr + cli.stdout).toBe(0);
    expect(cli.stdout).toMatch(/: SUCCEEDED/);
    expect(cli.stdout).toMatch(/CHECKPOINT\s+\d+ ms/);
    expect(cli.stdout).toMatch(/full filesystem/);
    expect(cli.stdout).toMatch(/downtime \d+ ms/);
    expect((await bed.docker('n2', 'exec', 'fullfs', 'cat', '/root/full.txt')).stdout.trim()).toBe('kept');
  });

  it('moves 4 containers in parallel (CRIU serialized per node, the rest concurrent)', async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await runOn('n1', `par${i}`, []));
    const results = await Promise.all(ids.map((id, i) => migrate(coordinator, id, i % 2 ? 'n2' : 'n3')));
    for (const r of results) expect(r.last?.state, r.last?.reason ?? JSON.stringify(r.error)).toBe('SUCCEEDED');
    for (let i = 0; i < 4; i++) expect((await bed.docker(i % 2 ? 'n2' : 'n3', 'inspect', '-f', '{{.State.Status}}', `par${i}`)).stdout.trim()).toBe('running');
  });

  it('keeps the IP and MAC of network-bound containers (two on one host), and clients reach them there', async () => {
    for (const n of ['n1', 'n2']) {
      const r = await bed.docker(n, 'network', 'create', '--subnet', '172.30.5.0/24', 'svc');
      expect(r.code, r.stderr).toBe(0);
    }
    const server = (word: string) => `i=0; while true; do i=$((i+1)); echo "${word} $i" | nc -l -p 8080; done`;
    const web = await runOn('n1', 'web', ['--network', 'svc', '--ip', '172.30.5.10'], server('hello'));
    const api = await runOn('n1', 'api', ['--network', 'svc', '--ip', '172.30.5.11'], server('api'));
    const netOf = async (node: string, name: string) => (await bed.docker(node, 'inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}}{{end}}', name)).stdout.trim();
    const before = { web: await netOf('n1', 'web'), api: await netOf('n1', 'api') };
    const ask = (node: string, ip: string) => bed.docker(node, 'run', '--rm', '--network', 'svc', BUSYBOX_IMAGE, 'sh', '-c', `nc -w 2 ${ip} 8080 </dev/null`);
    expect((await ask('n1', '172.30.5.10')).stdout).toMatch(/hello \d+/);
    const [a, b] = await Promise.all([migrate(coordinator, web, 'n2'), migrate(coordinator, api, 'n2')]);
    expect(a.last.state, a.last.reason).toBe('SUCCEEDED');
    expect(b.last.state, b.last.reason).toBe('SUCCEEDED');
    expect(await netOf('n2', 'web')).toBe(before.web);
    expect(await netOf('n2', 'api')).toBe(before.api);
    expect(before.web.startsWith('172.30.5.10 ')).toBe(true);
    const answer = await ask('n2', '172.30.5.10');
    expect(answer.stdout, answer.stderr).toMatch(/hello \d+/);
    expect((await ask('n2', '172.30.5.11')).stdout).toMatch(/api \d+/);
  });
});

describe('rollback, by fault injection', () => {
  async function restartWith(id: string, env: NodeJS.ProcessEnv): Promise<void> {
    await nodes.get(id)!.proc.stop();
    nodes.set(id, startHerdOn(bed, id, [], env));
    // the restarted node may have been the coordinator: follow whoever leads now
    coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
    await waitFor(`${id} back`, async () => (await connectedNodes(coordinator).catch((): string[] => [])).includes(id), 20_000, 100);
    await waitFor(`${id} criu`, async () => (await call(adminClient(coordinator), 'ListNodes', {})).nodes.find((n: any) => n.node_id === id)?.capabilities.includes('criu'), 20_000, 100);
  }

  async function noTargetLeft(node: string, name: string): Promise<void> {
    expect((await bed.docker(node, 'ps', '-aq', '--filter', `name=^${name}$`)).stdout.trim()).toBe('');
  }

  it('checkpoint fails (CRIU cannot dump here): the target container is removed, the source keeps running, CRIU says why', async () => {
    const herdId = await runOn('n1', 'nonroot', ['--user', '1000:1000']);
    const r = await migrate(coordinator, herdId, 'n2');
    expect(r.last.state).toBe('ROLLED_BACK');
    expect(r.last.reason).toMatch(/checkpoint failed/);
    expect(r.last.reason).toMatch(/CRIU|criu/);
    expect((await bed.docker('n1', 'inspect', '-f', '{{.State.Status}}', 'nonroot')).stdout.trim()).toBe('running');
    await noTargetLeft('n2', 'nonroot');
  });

  it('the restore on the target fails: the target is removed, the source restored from its own checkpoint (the count goes on)', async () => {
    await restartWith('n2', { HERD_FAULTS: 'migration.fail_restore' });
    const herdId = await runOn('n1', 'rb1', []);
    await new Promise((r) => setTimeout(r, 500));
    const before = await lastLog('n1', 'rb1');
    const r = await migrate(coordinator, herdId, 'n2');
    expect(r.last.state).toBe('ROLLED_BACK');
    expect(r.last.reason).toMatch(/fault injected: migration.fail_restore/);
    await new Promise((r2) => setTimeout(r2, 400));
    expect((await bed.docker('n1', 'inspect', '-f', '{{.State.Status}}', 'rb1')).stdout.trim()).toBe('running');
    expect(await lastLog('n1', 'rb1')).toBeGreaterThan(before); // restored with its state, not restarted
    await noTargetLeft('n2', 'rb1');
    await restartWith('n2', {});
  });

  it('the local restore fails too: the source is restarted and the migration reported FAILED', async () => {
    await restartWith('n2', { HERD_FAULTS: 'migration.fail_restore' });
    await restartWith('n1', { HERD_FAULTS: 'migration.fail_source_restore' });
    const herdId = await runOn('n1', 'rb2', []);
    const r = await migrate(coordinator, herdId, 'n2');
    expect(r.last.state).toBe('FAILED');
    expect(r.last.reason).toMatch(/restoring the source from its own checkpoint failed/);
    expect((await bed.docker('n1', 'inspect', '-f', '{{.State.Status}}', 'rb2')).stdout.trim()).toBe('running');
    await noTargetLeft('n2', 'rb2');
    await restartWith('n2', {});
    await restartWith('n1', {});
  });

  it('a cut transfer resumes and succeeds; a chunk corrupted every time rolls back', async () => {
    await restartWith('n1', { HERD_FAULTS: 'transfer.cut_after_bytes=65536,transfer.times=1' });
    const ok = await migrate(coordinator, await runOn('n1', 'cut', []), 'n2');
    expect(ok.last.state, ok.last.reason).toBe('SUCCEEDED');
    await restartWith('n1', { HERD_FAULTS: 'transfer.corrupt_at_offset=0,transfer.times=0' });
    const herdId = await runOn('n1', 'corrupt', []);
    const bad = await migrate(coordinator, herdId, 'n2');
    expect(bad.last.state).toBe('ROLLED_BACK');
    expect(bad.last.reason).toMatch(/crc|CRC|corrupt/);
    expect((await bed.docker('n1', 'inspect', '-f', '{{.State.Status}}', 'corrupt')).stdout.trim()).toBe('running');
    await noTargetLeft('n2', 'corrupt');
    await restartWith('n1', {});
  });

  it('the source agent is killed mid-migration: after its restart the migration is undone and the container runs once', async () => {
    await restartWith('n1', { HERD_FAULTS: 'migration.pause_before_complete_ms=4000' });
    const herdId = await runOn('n1', 'crash', []);
    const pending = migrate(coordinator, herdId, 'n2', 'FS_MODE_DIFF', 60_000);
    await waitFor('checkpointed', async () => (await call(adminClient(coordinator), 'ListMigrations', { herd_id: herdId })).migrations[0]?.step === 'TRANSFER', 20_000, 50);
    await kill9(nodes.get('n1')!);
    nodes.set('n1', startHerdOn(bed, 'n1'));
    const r = await pending;
    coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
    expect(r.last.state, r.last.reason).toBe('ROLLED_BACK');
    expect(r.last.reason).toMatch(/restarted during the migration/);
    expect((await bed.docker('n1', 'inspect', '-f', '{{.State.Status}}', 'crash')).stdout.trim()).toBe('running');
    await noTargetLeft('n2', 'crash');
  });
});

describe('bad requests are refused and touch nothing', () => {
  it('answers each with the right status and reason', async () => {
    const herdId = await runOn('n3', 'bad', []);
    const cases: Array<[string, string, string, RegExp]> = [
      ['nope0000000', 'n1', 'NOT_FOUND', /no container with herd id "nope0000000"/],
      [herdId, 'n9', 'NOT_FOUND', /no node "n9"/],
      [herdId, 'n3', 'INVALID_ARGUMENT', /already runs on n3/],
      ['../etc', 'n1', 'INVALID_ARGUMENT', /herd_id .* is not valid/],
    ];
    const codes: Record<string, number> = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, FAILED_PRECONDITION: 9 };
    for (const [h, t, code, re] of cases) {
      const r = await migrate(coordinator, h, t);
      expect(r.error?.code, `${h} -> ${t}`).toBe(codes[code]);
      expect(r.error?.details).toMatch(re);
    }
    const slow = migrate(coordinator, herdId, 'n1');
    await new Promise((r) => setTimeout(r, 100));
    const again = await migrate(coordinator, herdId, 'n2');
    expect(again.error?.code).toBe(9);
    expect(again.error?.details).toMatch(/already migrating/);
    expect((await slow).last.state).toBe('SUCCEEDED');
  });

  it('refuses a draining target and a node without a working CRIU', async () => {
    const herdId = await runOn('n3', 'bad2', []);
    const restart = async (id: string, extra: string[], env: NodeJS.ProcessEnv) => {
      await nodes.get(id)!.proc.stop();
      nodes.set(id, startHerdOn(bed, id, extra, env));
      coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
      await waitFor(`${id} back`, async () => (await connectedNodes(coordinator).catch((): string[] => [])).includes(id), 20_000, 100);
    };
    // drained at runtime with the CLI (an admin operator's certificate); the node keeps the mark
    const pki = testPki();
    const herdCli = (...args: string[]) => runCmd(process.execPath, [HERD, ...args, '-s', coordinator, '--cacert', pki.caCert, '--cert', pki.adminCert, '--key', pki.adminKey]);
    const drained = await herdCli('node', 'drain', 'n2');
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toContain('node "n2" is draining: no migrations to it (labels: herd.draining=true)');
    const st = await herdCli('status');
    expect(st.stdout, st.stdout).toMatch(/^n2 .* (leader|follower) \(draining\) /m);
    const d = await migrate(coordinator, herdId, 'n2');
    expect(d.error?.code).toBe(9);
    expect(d.error?.details).toMatch(/target node n2 is draining \(herd node undrain n2 takes it back\)/);
    await restart('n2', [], { PATH: '/usr/bin:/bin', HERD_BED_RAW_PATH: '1' }); // no criu on its PATH
    const labels = async () => (await call(adminClient(coordinator), 'ListNodes', {})).nodes.find((n: any) => n.node_id === 'n2').labels;
    expect(await labels()).toContainEqual({ key: 'herd.draining', value: 'true' }); // kept across the restart
    expect((await herdCli('node', 'undrain', 'n2')).code).toBe(0);
    expect(await labels()).not.toContainEqual({ key: 'herd.draining', value: 'true' });
    const audit = await herdCli('audit', '--limit', '10');
    expect(audit.stdout.split('\n').filter((l) => /\sDrainNode\s+OK\s.*"node_id":"n2"/.test(l)), audit.stdout).toHaveLength(2); // both, with who
    const c = await migrate(coordinator, herdId, 'n2');
    expect(c.error?.code).toBe(9);
    expect(c.error?.details).toMatch(/target node n2 cannot checkpoint or restore: CRIU is missing/);
    await restart('n2', [], {});
    expect((await bed.docker('n3', 'inspect', '-f', '{{.State.Status}}', 'bad2')).stdout.trim()).toBe('running');
  });
});
