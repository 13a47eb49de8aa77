/**
 * Collects the forecast's bed dataset (test/fixtures/forecast-bed.csv, its README says more):
 * the control issue's workloads (sysbench cpu with 1 and 4 threads, fio random reads;
 * test/bed/workloads.ts) on three capped bed nodes of different capacity, each container
 * live-migrated round the nodes with `herd migrate` so it is seen on every host, then the
 * coordinator's samples exported with `herd dataset export` as an operator types it.
 *
 *   node bench/run.mjs collect-dataset [minutes=10] [moveSeconds=30] [out=test/fixtures/forecast-bed.csv]
 * (root; bed "ds", subnet 141: not at the same time as test/integration/dataset.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBed } from '../test/bed/bed';
import { workloadArgs, type WorkloadKind } from '../test/bed/workloads';
import { adminClient, agreedLeader, startHerdOn } from '../test/helpers/cluster';
import { call } from '../test/helpers/coord';
import { HERD, ROOT, runCmd } from '../test/helpers/herd';
import { testPki } from '../test/helpers/pki';

const CORES = [0.1, 0.2, 0.4]; // small: a shared 2-core machine must keep its herd processes electing
const IOPS = [150, 300, 600];
const WORKLOADS: [string, WorkloadKind][] = [['cpu1', 'cpu'], ['cpu2', 'cpu'], ['mt', 'cpu-mt'], ['disk', 'disk']];
const minutes = Number(process.argv[2] ?? 10);
const moveMs = Number(process.argv[3] ?? 30) * 1000;
const out = process.argv[4] ?? join(ROOT, 'test/fixtures/forecast-bed.csv');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

async function main(): Promise<void> {
  execFileSync(process.execPath, [join(ROOT, 'build/bundle.mjs')], { stdio: 'inherit' });
  const bed = await startBed({ name: 'ds', subnet: 141, nodes: 3, docker: true, cpuCores: CORES, diskIops: IOPS, images: ['sysbench', 'fio'] });
  const herds = bed.nodes.map((n, i) => startHerdOn(bed, n.id, ['--label', `herd.cores=${CORES[i]}`, '--label', `herd.disk_iops=${IOPS[i]}`]));
  // the capped nodes hold cpu.shares on a shared machine: the herd processes get a control plane's priority
  for (const h of herds) execFileSync('renice', ['-n', '-15', '-g', String(h.proc.pid)], { stdio: 'ignore' });
  let leader = '';
  const herdCli = (...args: string[]) => runCmd(process.execPath, [HERD, ...args, '-s', leader, '--data-dir', testPki().caDataDir], 120_000);
  try {
    leader = (await agreedLeader(herds.map((h) => h.address), 60_000)).address;
    const start = new Date(Date.now() - 1000);
    // every workload starts on the smallest node, as in the control experiment's staircase
    for (const [i, [name, kind]] of WORKLOADS.entries()) {
      const node = bed.nodes[i % bed.nodes.length].id;
      const r = await bed.docker(node, 'run', '-d', ...workloadArgs(kind, name));
      if (r.code !== 0) throw new Error(`start ${name} on ${node}: ${r.stderr}`);
    }
    log(`${WORKLOADS.length} workloads started; moving one every ${moveMs / 1000} s for ${minutes} min`);
    const end = Date.now() + minutes * 60_000;
    let k = 0;
    let moves = 0;
    let failed = 0;
    while (Date.now() < end) {
      await sleep(Math.min(moveMs, Math.max(0, end - Date.now())));
      if (Date.now() >= end) break;
      const [name] = WORKLOADS[k++ % WORKLOADS.length];
      try {
        // on a crowded machine an election may be under way: ask again, skip this move if none answers
        leader = (await agreedLeader(herds.map((h) => h.address), 60_000)).address;
        const list = (await call(adminClient(leader), 'ListContainers', {})).containers.filter((c: any) => c.state === 'running');
        const c = list.find((x: any) => x.name === name);
        if (!c) continue;
        const next = bed.nodes[(bed.nodes.findIndex((n) => n.id === c.node_id) + 1) % bed.nodes.length].id;
        const r = await herdCli('migrate', c.herd_id, '--to', next);
        moves++;
        if (r.code !== 0) failed++;
        log(`${name}: ${c.node_id} -> ${next}: ${r.code === 0 ? 'moved' : `failed (${(r.stderr || r.stdout).trim().split('\n').pop()})`}`);
      } catch (e) {
        log(`${name}: not moved this time: ${(e as Error).message}`);
      }
    }
    await sleep(10_000); // the last samples reach the coordinator
    leader = (await agreedLeader(herds.map((h) => h.address), 120_000)).address;
    const r = await herdCli('dataset', 'export', '--from', start.toISOString(), '--out', out);
    if (r.code !== 0) throw new Error(`herd dataset export: ${r.stderr}`);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    log(`${r.stderr.trim()}; ${moves} moves (${failed} failed)`);
    process.stdout.write(`collect-dataset: ${lines.length - 1} rows from ${minutes} min on nodes of ${CORES.join('/')} cores, ${WORKLOADS.length} workloads, ${moves - failed} migrations: ${out}\n`);
  } finally {
    for (const h of herds) await h.proc.stop().catch(() => {});
    await bed.stop().catch((e) => log(`bed cleanup: ${(e as Error).message}`));
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
