/**
 * `herd dataset export` on real herd processes, one dockerd per node (bed "ds", subnet 141):
 * two nodes of different capacity (herd.cores 0.5 and 1), a busy container x that reports
 * 40 ops/s in its log and an idle one y that reports 7, x live-migrated from n1 to n2 with
 * `herd migrate`; then the dataset exported as a user types it, and its rows checked against
 * what the containers did: where each ran in each step, its ops, its host's capacity and
 * neighbours, the steps after the migration marked. `herd model train` takes the file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATASET_COLUMNS } from '../../coordinator/forecast/dataset-rows';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { HERD, runCmd } from '../helpers/herd';
import { testPki } from '../helpers/pki';
import { waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes: HerdNode[] = [];
let server = '';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herd-dataset-'));
const tls = () => {
  const p = testPki();
  return ['--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey];
};
/** A command line as a user types it (split on spaces), run in the test's directory, with the node and certificates added. */
const typed = (line: string, connect = true) => runCmd(process.execPath, [HERD, ...line.replace(/^herd /, '').split(' '), ...(connect ? ['-s', server, ...tls()] : [])], 120_000, dir);
const herd = (...args: string[]) => runCmd(process.execPath, [HERD, ...args.slice(0, args.indexOf('--') < 0 ? args.length : args.indexOf('--')), '-s', server, ...tls(), ...(args.includes('--') ? args.slice(args.indexOf('--')) : [])], 120_000);
const OPS = ['-l', 'herd.ops.regex=^ops (\\d+)$', '-l', 'herd.ops.group=1'];
const BUSY = 'while :; do echo "ops 40"; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.05; done';
const IDLE = 'while :; do echo "ops 7"; sleep 0.5; done';

beforeAll(async () => {
  bed = await startBed({ nodes: 2, docker: true, name: 'ds', subnet: 141 });
  nodes.push(startHerdOn(bed, 'n1', ['--label', 'herd.cores=0.5']), startHerdOn(bed, 'n2', ['--label', 'herd.cores=1']));
  server = (await agreedLeader(nodes.map((n) => n.address), 60_000)).address;
  await waitFor('2 agents streaming', async () => (await connectedNodes(server)).length === 2, 60_000, 200);
  await waitFor('criu capability everywhere', async () => (await call(adminClient(server), 'ListNodes', {})).nodes.every((n: any) => n.capabilities.includes('criu')), 30_000, 200);
}, 240_000);

afterAll(async () => {
  for (const n of nodes) await n.proc.stop().catch(() => {});
  await bed?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('herd dataset export', () => {
  let x = '';
  let y = '';
  let movedAt = 0;
  let startedAt = 0;

  it('collects while a container runs on a small node, moves to a bigger one, and runs there', async () => {
    startedAt = Date.now();
    for (const [cmd, set] of [[BUSY, (id: string) => (x = id)], [IDLE, (id: string) => (y = id)]] as const) {
      const r = await herd('run', '--json', '--node', 'n1', ...OPS, BUSYBOX_IMAGE, '--', 'sh', '-c', cmd);
      expect(r.code, r.stderr).toBe(0);
      set(JSON.parse(r.stdout).herd_id);
    }
    const opsSeen = async (id: string) => (await call(adminClient(server), 'ListSeries', { entity: id, metric_prefix: 'container.ops' })).series.length > 0;
    await waitFor('ops of both containers stored', async () => (await opsSeen(x)) && (await opsSeen(y)), 60_000, 500);
    await new Promise((r) => setTimeout(r, 15_000));
    const m = await herd('migrate', x, '--to', 'n2');
    expect(m.code, m.stderr + m.stdout).toBe(0);
    movedAt = Date.now();
    await waitFor('x reporting from n2', async () => {
      const pts = (await call(adminClient(server), 'QuerySamples', { entity: x, metric: 'container.ops', from_ms: movedAt })).points;
      return pts.length >= 5;
    }, 60_000, 500);
    // past the 30 s after the move that the export marks, and some more
    await new Promise((r) => setTimeout(r, Math.max(0, movedAt + 40_000 - Date.now())));
  }, 300_000);

  it('exports one row per container per step, as the containers did, with the steps after the move marked', async () => {
    const minutes = Math.ceil((Date.now() - startedAt) / 60_000) + 1;
    const r = await typed(`herd dataset export --from ${minutes}m --out ds.csv`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^\\d+ rows, ${DATASET_COLUMNS.length} columns, .* every 5000 ms: ds.csv\\n$`));
    const [header, ...lines] = fs.readFileSync(path.join(dir, 'ds.csv'), 'utf8').trim().split('\n');
    expect(header).toBe(DATASET_COLUMNS.join(','));
    const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [DATASET_COLUMNS[i], v])));
    const of = (id: string) => rows.filter((row) => row.herd_id === id);
    const xs = of(x);
    const ys = of(y);
    expect(rows.length).toBe(xs.length + ys.length);
    for (const row of rows) expect(Number(row.time_ms) % 5000).toBe(Number(rows[0].time_ms) % 5000); // one grid
    // what they reported
    expect(xs.every((row) => Number(row.ops) === 40)).toBe(true);
    expect(ys.every((row) => Number(row.ops) === 7)).toBe(true);
    // where x ran: n1 (0.5 cores) before the move, n2 (1 core) after, each at least three steps
    const onN1 = xs.filter((row) => row.node_id === 'n1');
    const onN2 = xs.filter((row) => row.node_id === 'n2');
    expect(onN1.length).toBeGreaterThanOrEqual(3);
    expect(onN2.length).toBeGreaterThanOrEqual(3);
    expect(onN1.length + onN2.length).toBe(xs.length);
    expect(Math.max(...onN1.map((row) => Number(row.time_ms)))).toBeLessThan(Math.min(...onN2.map((row) => Number(row.time_ms))));
    expect(Math.max(...onN1.map((row) => Number(row.time_ms)))).toBeLessThan(movedAt);
    expect(new Set(onN1.map((row) => row.host_cores))).toEqual(new Set(['0.5']));
    expect(new Set(onN2.map((row) => row.host_cores))).toEqual(new Set(['1']));
    // x was busy (its CPU is measured), y idle; y had x beside it on n1, then nobody
    const meanCpu = (rs: typeof rows) => rs.reduce((a, row) => a + Number(row.ctr_cpu), 0) / rs.length;
    expect(meanCpu(xs), JSON.stringify(xs.slice(0, 3))).toBeGreaterThan(0.01);
    expect(meanCpu(xs)).toBeGreaterThan(meanCpu(ys));
    const yWithX = ys.filter((row) => onN1.some((o) => o.time_ms === row.time_ms));
    expect(yWithX.length).toBeGreaterThan(0);
    expect(yWithX.every((row) => row.host_other_containers === '1')).toBe(true);
    const yAlone = ys.filter((row) => onN2.some((o) => o.time_ms === row.time_ms));
    expect(yAlone.every((row) => row.host_other_containers === '0')).toBe(true);
    expect(onN2.every((row) => row.host_other_containers === '0')).toBe(true);
    // the first steps on n2 are marked, none on n1 but the step the move ended in, and not all of them on n2
    expect(onN2[0].after_migration).toBe('1');
    expect(onN1.slice(0, -1).every((row) => row.after_migration === '0')).toBe(true);
    expect(onN2[onN2.length - 1].after_migration).toBe('0');
  });

  it('is a table herd model train takes as it is', async () => {
    const r = await typed('herd model train --csv ds.csv --target ops --time time_ms --out model.onnx', false);
    expect(r.stderr + r.stdout).toMatch(/trained on \d+ rows/);
    expect(r.code).toBe(0);
  });

  it('refuses a bad range, naming the flag or field', async () => {
    const notTime = await typed('herd dataset export --from yesterday');
    expect(notTime.stderr).toMatch(/--from "yesterday" is not a time/);
    expect(notTime.code).toBe(2);
    const inverted = await typed('herd dataset export --from 1m --to 2m');
    expect(inverted.stderr).toMatch(/INVALID_ARGUMENT: to_ms \d+ must be after from_ms \d+/);
    expect(inverted.code).toBe(2);
    const step = await typed('herd dataset export --from 1m --step 10ms');
    expect(step.stderr).toMatch(/INVALID_ARGUMENT: step_ms must be from 1000 to 3600000 ms/);
    expect(fs.existsSync(path.join(dir, 'ds.csv.partial'))).toBe(false);
  });
});
