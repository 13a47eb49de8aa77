/**
 * The cluster page end to end: two real herd nodes with dockerd + CRIU, a browser (Debian's
 * headless Chromium, driven by playwright-core) presenting a read-only operator's PKCS#12
 * made by `herd admin-cert create --p12` and checking the server's certificate and host
 * name against the cluster CA. The page shows the nodes and the container, and follows a
 * live migration on its own (server-sent events).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { HERD, ROOT, runCmd } from '../helpers/herd';
import { migrate } from '../helpers/migrate';
import { testPki } from '../helpers/pki';
import { tempDir, waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes: HerdNode[] = [];
let coordinator = '';
let tmp: ReturnType<typeof tempDir>;
let decisionId = ''; // the decision `herd policy evaluate` made in the first test
const webOf = (grpcAddress: string) => `https://${grpcAddress.replace(/:7400$/, ':7401')}`;

beforeAll(async () => {
  tmp = tempDir();
  bed = await startBed({ nodes: 2, docker: true, name: 'pg', subnet: 121 });
  for (const n of bed.nodes) nodes.push(startHerdOn(bed, n.id));
  coordinator = (await agreedLeader(nodes.map((n) => n.address), 20_000)).address;
  await waitFor('2 agents streaming', async () => (await connectedNodes(coordinator)).length === 2, 30_000, 100);
  await waitFor('criu on both', async () => (await call(adminClient(coordinator), 'ListNodes', {})).nodes.every((n: any) => n.capabilities.includes('criu')), 20_000, 200);
});

afterAll(async () => {
  for (const n of nodes) await n.proc.stop().catch(() => {});
  await bed?.stop();
  tmp?.cleanup();
});

const curl = async (url: string) => {
  const p = testPki();
  const r = await runCmd('curl', ['-sS', '--max-time', '10', '--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey, '-D', '-', url]);
  const [head, ...body] = r.stdout.split('\r\n\r\n');
  return { code: Number(/^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1]), head, body: body.join('\r\n\r\n') };
};

describe('the cluster page', () => {
  it('a read-only operator sees the nodes and the container, and the page follows a migration live', async () => {
    const run = await bed.docker('n1', 'run', '-d', '--name', 'page-counter', BUSYBOX_IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done');
    expect(run.code, run.stderr).toBe(0);
    const herdId = run.stdout.trim().slice(0, 12);
    await waitFor('counter listed', async () => (await call(adminClient(coordinator), 'ListContainers', {})).containers.some((c: any) => c.herd_id === herdId), 15_000, 100);
    const source = nodes.find((n) => n.id === 'n1')!;
    const target = 'n2';

    // The operator's browser file, as the docs tell a person to make it.
    const made = await runCmd(process.execPath, [HERD, 'admin-cert', 'create', 'viewer', '--role', 'read-only', '--p12', '--data-dir', testPki().caDataDir, '--out', tmp.dir], 30_000);
    expect(made.code, made.stderr).toBe(0);
    const password = /its password \(shown once\): (\S+)/.exec(made.stdout)?.[1];
    expect(password).toBeTruthy();

    // HERD_PAGE_SCREENSHOT=docs/cluster-page.png keeps the picture (how the one in docs/ was made).
    const screenshot = process.env.HERD_PAGE_SCREENSHOT ? join(ROOT, process.env.HERD_PAGE_SCREENSHOT) : join(tmp.dir, 'cluster-page.png');
    const probe = spawn(process.execPath, [join(ROOT, 'test', 'tools', 'page-probe.mjs')], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: testPki().caCert, PROBE: JSON.stringify({ url: `${webOf(coordinator)}/`, pfx: join(tmp.dir, 'viewer.p12'), passphrase: password, nodes: 2, herdId, node: target, decision: true, screenshot }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    probe.stderr.on('data', (d) => (stderr += d));
    const events: any[] = [];
    const next = (name: string, ms: number) =>
      waitFor(`page probe: ${name} (stderr: ${stderr.slice(-500)})`, () => events.find((e) => e.event === name), ms, 50);
    createInterface({ input: probe.stdout }).on('line', (l) => events.push(JSON.parse(l)));

    const ready = await next('ready', 150_000);
    expect(ready.nodes).toEqual(['n1', 'n2']);
    expect(ready.containers).toContainEqual({ herdId, node: 'n1' });
    expect(ready.transferBytes).toBeGreaterThan(0);
    expect(ready.transferBytes).toBeLessThan(300 * 1024);
    console.log(`cluster page first load: ${ready.transferBytes} bytes transferred, interactive at ${ready.interactiveMs.toFixed(0)} ms, load ${ready.loadMs.toFixed(0)} ms (Chromium's timing)`);

    const m = await migrate(coordinator, herdId, target);
    expect(m.last?.state, JSON.stringify(m)).toBe('SUCCEEDED');
    const ended = Date.now();
    const moved = await next('moved', 15_000);
    console.log(`the page showed the container on ${target} ${moved.atMs - ended} ms after the migration call returned`);

    // An operator asks the controller for an evaluation; the page shows the decision, live.
    const p = testPki();
    const evaluate = () => runCmd(process.execPath, [HERD, 'policy', 'evaluate', '-s', coordinator, '--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey], 60_000);
    let evaluated = await evaluate();
    // On a crowded machine an election may be under way: that answer means "ask again".
    for (let attempt = 1; attempt < 10 && /UNAVAILABLE: no coordinator is elected yet/.test(evaluated.stderr); attempt++) {
      await new Promise((r) => setTimeout(r, 1000));
      evaluated = await evaluate();
    }
    expect(evaluated.code, evaluated.stderr).toBe(0);
    decisionId = /^(d-\d+-\d+)\s/m.exec(evaluated.stdout)?.[1] ?? '';
    expect(decisionId, evaluated.stdout).toMatch(/^d-/);
    const shown = await next('decision', 30_000);
    expect(shown.ids).toContain(decisionId);
    expect(shown.rows.find((r: any) => r.id === decisionId).text).toMatch(/recommend.*evaluate-now/);
    await next('screenshot', 40_000);
    await new Promise((r) => probe.once('exit', r));
    expect(probe.exitCode, stderr).toBe(0);
    expect(source.id).toBe('n1');
  }, 400_000);

  it('a node that is not the coordinator sends the browser to it', async () => {
    const follower = nodes.find((n) => n.address !== coordinator)!;
    const r = await curl(`${webOf(follower.address)}/`);
    expect(r.code).toBe(307);
    expect(r.head).toMatch(new RegExp(`location: ${webOf(coordinator).replace(/\./g, '\\.')}/`, 'i'));
    const api = await curl(`${webOf(follower.address)}/api/state`);
    expect(api.code).toBe(503);
    expect(api.body).toMatch(/this node is not the coordinator: ask n\d at https:/);
  });

  it('checks every query parameter and changes nothing', async () => {
    const base = webOf(coordinator);
    expect((await curl(`${base}/api/series?kind=disk`)).body).toMatch(/kind must be host or ops, not "disk"/);
    expect((await curl(`${base}/api/series?minutes=0`)).code).toBe(400);
    expect((await curl(`${base}/api/series?minutes=1e9`)).body).toMatch(/minutes must be a whole number from 1 to 1440/);
    expect((await curl(`${base}/api/series?kind=host&x=%00`)).body).toMatch(/unknown parameter "x"/);
    expect((await curl(`${base}/api/state?herd_id=abc`)).code).toBe(400);
    const ok = await curl(`${base}/api/series?kind=ops&minutes=5`);
    expect(ok.code).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ step_ms: expect.any(Number), lines: expect.any(Array), migrations: expect.any(Array) });
    const state = JSON.parse((await curl(`${base}/api/state`)).body);
    expect(state.nodes.map((n: any) => n.id)).toEqual(['n1', 'n2']);
    expect(state.decisions.map((d: any) => d.id)).toContain(decisionId);
    expect((await curl(`${base}/api/decisions?limit=0`)).body).toMatch(/limit must be a whole number from 1 to 200, not "0"/);
    expect((await curl(`${base}/api/decisions?limit=-1`)).code).toBe(400);
    expect((await curl(`${base}/api/decisions?limit=1&since=2`)).body).toMatch(/unknown parameter "since"/);
    const listed = JSON.parse((await curl(`${base}/api/decisions?limit=5`)).body);
    expect(listed.decisions.find((d: any) => d.id === decisionId)).toMatchObject({ mode: 'recommend', trigger: 'evaluate-now', note: expect.any(String) });
  });
});
