/**
 * A nemesis for live migration on the bed, in the spirit of Jepsen: real herd processes,
 * dockerd and CRIU on three nodes, counter containers migrated one after another, each
 * migration hit by a fault at a random moment; a checker watches throughout and after.
 *
 * Faults: kill -9 of the source's, the target's or the coordinator's agent (restarted after
 * a random time; its dockerd keeps running), the source-target link cut in the network
 * namespaces (iptables DROP both ways, silent, for a random time), a restore that fails on
 * the target (HERD_FAULTS=migration.fail_restore), the target's or the source's disk full
 * (its agent's image tmpfs, where the checkpoint is dumped and fetched to, shrunk to what it
 * holds: test/bed/diskfull.ts; it hits at a quarter of the drawn moment, 0-375 ms, so it
 * mostly meets the dump or the transfer), or none.
 *
 * Checked: the container never runs on two nodes at a sampled instant (docker ps on every
 * node, every SAMPLE_MS); a counter value seen on some copy is never emitted again later
 * (docker logs -t of the final copy, whose history follows it across moves): the count never
 * goes back, except after a FAILED migration, which restarts the source without its state;
 * every migration ends SUCCEEDED, ROLLED_BACK or FAILED, the last two with a reason, and the
 * container runs where the outcome says, exactly once, within 30 s of the fault healing; at
 * the end nothing is left behind (no stopped copy, no migration files, nothing new on the
 * image tmpfs) and no batch of
 * samples is missing at the coordinator (herd.batch.seq of every node is 1..n).
 *
 * A schedule is a pure function of its seed, so a failure replays: NEMESIS_SEED=<seed>.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../../coordinator/election/sim';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { migrate } from '../helpers/migrate';
import { BUSYBOX_IMAGE, type Bed } from './bed';
import { FullDisks, imageTmpfsEntries } from './diskfull';

export type FaultKind = 'none' | 'kill-source' | 'kill-target' | 'kill-coordinator' | 'cut-link' | 'fail-restore' | 'full-target' | 'full-source';
export const FAULTS: FaultKind[] = ['none', 'kill-source', 'kill-target', 'kill-coordinator', 'cut-link', 'fail-restore', 'full-target', 'full-source'];

/** One migration and its fault; which node is source and target is decided when it runs (where the container is then). */
export interface Step {
  container: number;
  /** Picks the target among the other nodes. */
  targetPick: number;
  fault: FaultKind;
  /** When the fault hits, after Migrate is sent. */
  atMs: number;
  /** How long a killed agent stays down, or the link stays cut. */
  downMs: number;
}

/**
 * The schedule of a seed: rounds in which every container migrates once, all at the same
 * time, each with its own fault (faults of one round overlap: a node killed for one
 * migration is killed for the others it is part of). Pure, so a failure replays.
 */
export function schedule(seed: number, rounds: number, containers: number): Step[][] {
  const rnd = mulberry32(seed);
  return Array.from({ length: rounds }, () =>
    Array.from({ length: containers }, (_, container) => ({
      container,
      targetPick: rnd(),
      fault: FAULTS[Math.floor(rnd() * FAULTS.length)],
      atMs: Math.floor(rnd() * 1500),
      downMs: 300 + Math.floor(rnd() * 2200),
    })),
  );
}

export interface StepResult {
  step: Step;
  from: string;
  to: string;
  outcome: string;
  reason: string;
  /** From the fault healing to the container running exactly once. */
  recoveredMs: number;
}

export interface NemesisReport {
  results: StepResult[];
  violations: string[];
  outcomes: Record<string, number>;
  faults: Record<string, number>;
  maxRecoveredMs: number;
}

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const SAMPLE_MS = 200;
const SETTLE_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Nemesis {
  readonly violations: string[] = [];
  private readonly where = new Map<string, string>();
  /** Counter values seen running, per container, with when (since its last FAILED migration). */
  private readonly seen = new Map<string, Array<{ value: number; at: number }>>();
  private readonly failedRuns = new Map<string, number>();
  private coordinator = '';
  private sampling = false;
  private sampler?: Promise<void>;
  private readonly watched = new Set<string>();
  /** Kills and restarts of one node, one after the other (two migrations may pick the same victim). */
  private readonly nodeOps = new Map<string, Promise<unknown>>();
  private readonly names: string[];
  /** Per container, the last sampled instant it did not run exactly once. */
  private readonly lastBad = new Map<string, number>();
  private startedAt = 0;
  private readonly disks: FullDisks;
  /** What each node's image tmpfs held before the first migration (it outlives beds). */
  private readonly tmpfsBefore = new Map<string, Set<string>>();

  constructor(private readonly bed: Bed, private readonly nodes: Map<string, HerdNode>, containers: number, private readonly log: (s: string) => void = () => {}) {
    this.names = Array.from({ length: containers }, (_, i) => `nem${i}`);
    this.disks = new FullDisks(bed);
  }

  private ids(): string[] {
    return this.bed.nodes.map((n) => n.id);
  }

  private async leader(): Promise<string> {
    this.coordinator = (await agreedLeader([...this.nodes.values()].map((n) => n.address), 30_000)).address;
    return this.coordinator;
  }

  /** Every agent streaming to an agreed coordinator, each with CRIU. */
  async settle(): Promise<void> {
    // generous: on a machine loaded by other work an election can take long (the checker's
    // 30 s recovery bound is measured from docker ps, not from this)
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      try {
        const addr = await this.leader();
        const r = await call(adminClient(addr), 'ListNodes', {});
        if (r.nodes.filter((n: any) => n.connected && n.capabilities.includes('criu')).length === this.nodes.size) return;
      } catch {
        /* an election under way */
      }
      if (Date.now() > deadline) throw new Error(`the cluster did not settle within ${SETTLE_MS / 1000} s`);
      await sleep(200);
    }
  }

  async setup(): Promise<void> {
    await this.settle();
    for (const [i, name] of this.names.entries()) {
      const node = this.ids()[i % this.ids().length];
      const r = await this.bed.docker(node, 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
      if (r.code !== 0) throw new Error(`docker run ${name} on ${node}: ${r.stderr}`);
      this.where.set(name, node);
      this.seen.set(name, []);
      this.failedRuns.set(name, 0);
    }
    await waitUntil('containers listed', async () => (await call(adminClient(this.coordinator), 'ListContainers', {})).containers.filter((c: any) => this.names.includes(c.name)).length === this.names.length, 20_000);
    for (const n of this.ids()) this.tmpfsBefore.set(n, new Set(imageTmpfsEntries(this.bed, n)));
    this.startedAt = Date.now();
    this.sampling = true;
    this.sampler = this.sample();
  }

  /** Every SAMPLE_MS: where each container runs (never two nodes at once), and the migrating counter's value. */
  private async sample(): Promise<void> {
    while (this.sampling) {
      const t0 = Date.now();
      const running = await Promise.all(this.ids().map(async (n) => ({ n, names: (await this.bed.docker(n, 'ps', '--format', '{{.Names}}')).stdout.split('\n').filter(Boolean) })));
      for (const name of this.names) {
        const on = running.filter((r) => r.names.includes(name)).map((r) => r.n);
        if (on.length > 1) this.violations.push(`${name} ran on ${on.join(' and ')} at once (${new Date(t0).toISOString()})`);
        if (on.length !== 1) this.lastBad.set(name, t0);
      }
      for (const w of this.watched) {
        const on = running.filter((r) => r.names.includes(w)).map((r) => r.n);
        for (const n of on) {
          const v = Number((await this.bed.docker(n, 'logs', '--tail', '1', w)).stdout.trim());
          if (Number.isFinite(v) && v > 0) this.seen.get(w)!.push({ value: v, at: Date.now() });
        }
      }
      await sleep(Math.max(0, SAMPLE_MS - (Date.now() - t0)));
    }
  }

  private restart(id: string, env: NodeJS.ProcessEnv = {}, kill = true, downMs = 0): Promise<unknown> {
    const op = (this.nodeOps.get(id) ?? Promise.resolve()).then(async () => {
      if (kill) await kill9(this.nodes.get(id)!);
      else await this.nodes.get(id)!.proc.stop();
      await sleep(downMs);
      this.nodes.set(id, startHerdOn(this.bed, id, [], env));
    });
    this.nodeOps.set(id, op.catch(() => {}));
    return op;
  }

  /** One round: every step at once; then the fail-restore targets get their plain agent back. */
  async round(steps: Step[]): Promise<StepResult[]> {
    // A CRIU config file is machine-wide: one that turns on lazy pages (another experiment on
    // this machine) makes every dump wait for a page client, and migrations hang for it.
    const conf = ['/etc/criu/runc.conf', '/etc/criu/default.conf'].filter((f) => existsSync(f));
    if (conf.length) this.log(`warning: ${conf.join(', ')} present: every CRIU dump on this machine follows it`);
    await this.settle();
    const plan = steps.map((step) => {
      const name = this.names[step.container];
      const from = this.where.get(name)!;
      const others = this.ids().filter((n) => n !== from);
      return { step, name, from, to: others[Math.floor(step.targetPick * others.length)] };
    });
    const faulty = [...new Set(plan.filter((p) => p.step.fault === 'fail-restore').map((p) => p.to))];
    for (const n of faulty) await this.restart(n, { HERD_FAULTS: 'migration.fail_restore' }, false);
    if (faulty.length) await this.settle();
    const results = await Promise.all(plan.map((p) => this.run(p.step, p.from, p.to)));
    for (const n of faulty) await this.restart(n, {}, false);
    return results;
  }

  private async cut(a: string, b: string, on: boolean): Promise<void> {
    const [ia, ib] = [this.bed.node(a).ip, this.bed.node(b).ip];
    const flag = on ? '-I' : '-D';
    await Promise.all([this.bed.exec(a, 'iptables', [flag, 'INPUT', '-s', ib, '-j', 'DROP']), this.bed.exec(a, 'iptables', [flag, 'OUTPUT', '-d', ib, '-j', 'DROP']), this.bed.exec(b, 'iptables', [flag, 'INPUT', '-s', ia, '-j', 'DROP']), this.bed.exec(b, 'iptables', [flag, 'OUTPUT', '-d', ia, '-j', 'DROP'])]);
  }

  /** One migration with its fault; returns when the container runs exactly once again. */
  private async run(step: Step, from: string, to: string): Promise<StepResult> {
    const name = this.names[step.container];
    const t0 = Date.now();
    const herdId = (await call(adminClient(this.coordinator), 'ListContainers', {})).containers.find((c: any) => c.name === name)?.herd_id;
    if (!herdId) throw new Error(`${name} is not listed by the coordinator`);
    this.watched.add(name);
    const started = Date.now();
    // Not longer: a coordinator that died or stepped down leaves its stream without records.
    const stream = migrate(this.coordinator, herdId, to, 'FS_MODE_DIFF', 30_000);
    await sleep(step.fault.startsWith('full-') ? Math.floor(step.atMs / 4) : step.atMs);
    const coordinatorId = this.bed.nodes.find((n) => `${n.ip}:7400` === this.coordinator)?.id;
    switch (step.fault) {
      case 'kill-source':
      case 'kill-target':
      case 'kill-coordinator': {
        const victim = step.fault === 'kill-source' ? from : step.fault === 'kill-target' ? to : coordinatorId!;
        await this.restart(victim, {}, true, step.downMs);
        break;
      }
      case 'cut-link':
        await this.cut(from, to, true);
        await sleep(step.downMs);
        await this.cut(from, to, false);
        break;
      case 'full-target':
      case 'full-source': {
        const victim = step.fault === 'full-target' ? to : from;
        await this.disks.fill(victim);
        await sleep(step.downMs);
        await this.disks.heal(victim);
        break;
      }
      default:
    }
    const healed = Date.now();
    const first = await stream;
    // The stream ends with the final record, unless its coordinator died or stepped down:
    // then whoever leads now is asked, by migration id (the stream's first record has it).
    let last = first.last;
    const final = (m: any) => m && ['SUCCEEDED', 'ROLLED_BACK', 'FAILED'].includes(m.state);
    const id: string | undefined = first.records[0]?.migration_id;
    if (!id) last = { state: 'REFUSED', reason: first.error?.details ?? 'no record' }; // nothing was commanded
    else if (!final(last)) {
      const asked = Date.now();
      last = await waitUntil(`migration ${id} of ${name} ended`, async () => {
        await this.settle().catch(() => {});
        const list = (await call(adminClient(this.coordinator), 'ListMigrations', { herd_id: herdId }).catch(() => ({ migrations: [] }))).migrations;
        const m = list.find((x: any) => x.migration_id === id);
        // Commanded by a coordinator that died before the source had it: no coordinator
        // knows it after 30 s, and the source never started it (checked below: it runs where it was).
        if ((!m || m.state === 'PENDING') && Date.now() - asked > 30_000) return { state: 'LOST', reason: `the command went down with its coordinator (${first.error?.details ?? ''})` };
        return final(m) ? m : undefined;
      }, 120_000).catch((err: Error) => {
        // an invariant broken, not the end of the run: counted, and the run goes on
        this.violations.push(`${name}: migration ${id} never ended (${err.message})`);
        return { state: 'STUCK', reason: err.message };
      });
    }
    this.watched.delete(name);
    const outcome: string = last.state;
    const reason: string = last.reason ?? '';
    if (!['SUCCEEDED', 'REFUSED', 'LOST'].includes(outcome) && !reason) this.violations.push(`${name}: ${outcome} without a reason`);
    // exactly once, where the outcome says, within 30 s of the fault healing
    const expected = outcome === 'SUCCEEDED' ? to : from;
    const on = await waitUntil(`${name} running exactly once`, async () => {
      const where = await this.runningOn(name);
      return where.length === 1 ? where : undefined;
    }, 60_000).catch(() => [] as string[]);
    // Sampled: from the fault healing to the last instant it did not run exactly once, plus one sample.
    const recoveredMs = Math.max(0, (this.lastBad.get(name) ?? 0) + SAMPLE_MS - healed);
    if (on.length !== 1) this.violations.push(`${name}: not running exactly once 60 s after the fault healed (${outcome})`);
    else if (on[0] !== expected) this.violations.push(`${name}: ${outcome} but it runs on ${on[0]}, not ${expected}`);
    else if (recoveredMs > 30_000) this.violations.push(`${name}: running exactly once only ${recoveredMs} ms after the fault healed`);
    if (on.length === 1) this.where.set(name, on[0]);
    if (outcome === 'FAILED') {
      this.failedRuns.set(name, this.failedRuns.get(name)! + 1);
      this.seen.set(name, []);
    } else await this.checkCount(name);
    const r: StepResult = { step, from, to, outcome, reason, recoveredMs };
    this.log(`${name} ${from}->${to} ${step.fault}@${step.atMs}ms/${step.downMs}ms: ${outcome}${reason ? ` (${reason.slice(0, 140)})` : ''}; once again after ${recoveredMs} ms; step ${Date.now() - t0} ms`);
    return r;
  }

  private async runningOn(name: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of this.ids()) if ((await this.bed.docker(n, 'ps', '--format', '{{.Names}}')).stdout.split('\n').includes(name)) out.push(n);
    return out;
  }

  /** The final copy's history: no value seen running earlier is emitted again later, and it counts on. */
  private async checkCount(name: string): Promise<void> {
    const node = this.where.get(name)!;
    await sleep(300);
    const lines = (await this.bed.docker(node, 'logs', '-t', name)).stdout.trim().split('\n');
    const at = new Map<number, number>();
    let resets = 0;
    let prev = 0;
    for (const l of lines) {
      const [ts, v] = l.split(' ');
      const value = Number(v);
      if (value === 1 && prev > 0) resets++;
      else if (prev > 0 && value !== prev + 1) this.violations.push(`${name}: its count jumps from ${prev} to ${value}`);
      prev = value;
      at.set(value, Date.parse(ts)); // after a reset (FAILED), the latest run's
    }
    if (resets !== this.failedRuns.get(name)) this.violations.push(`${name}: its count restarted ${resets} times, but ${this.failedRuns.get(name)} migrations FAILED`);
    for (const s of this.seen.get(name)!) {
      const emitted = at.get(s.value);
      if (emitted !== undefined && emitted > s.at + 50) {
        this.violations.push(`${name}: ${s.value} was seen running at ${new Date(s.at).toISOString()} and emitted again at ${new Date(emitted).toISOString()}: the count went back`);
        break;
      }
    }
    this.seen.set(name, []);
  }

  /** After the last step: nothing left behind, no batch missing. */
  async finish(): Promise<void> {
    this.sampling = false;
    await this.sampler;
    await this.settle();
    for (const n of this.ids()) {
      const all = (await this.bed.docker(n, 'ps', '-a', '--format', '{{.Names}} {{.State}}')).stdout.split('\n').filter(Boolean);
      for (const l of all) if (!l.endsWith(' running')) this.violations.push(`${n}: a container left behind: ${l}`);
      const dataDir = this.nodes.get(n)!.dataDir;
      for (const sub of ['out', 'in']) {
        const dir = join(dataDir, 'migrations', sub);
        const left = existsSync(dir) ? readdirSync(dir) : [];
        if (left.length) this.violations.push(`${n}: migration files left in ${dir}: ${left.join(', ')}`);
      }
      const onTmpfs = imageTmpfsEntries(this.bed, n).filter((e) => !this.tmpfsBefore.get(n)?.has(e));
      if (onTmpfs.length) this.violations.push(`${n}: checkpoint images left on the image tmpfs: ${onTmpfs.join(', ')}`);
    }
    for (const name of this.names) {
      const on = await this.runningOn(name);
      if (on.length !== 1) this.violations.push(`${name} runs on ${on.length} nodes at the end`);
    }
    // every batch of every node at the coordinator: herd.batch.seq is 1..n with no gap
    for (const n of this.ids()) {
      let last = { count: 0, min: 0, max: 0 };
      const ok = await waitUntil(`${n}'s batches at the coordinator`, async () => {
        const r = await call(adminClient(this.coordinator), 'QuerySamples', { entity: n, metric: 'herd.batch.seq', from_ms: this.startedAt - 3600_000, to_ms: 0, step_ms: 3600_000 });
        const p = r.points.reduce((a: any, x: any) => ({ count: a.count + Number(x.count), min: Math.min(a.min, x.min), max: Math.max(a.max, x.max) }), { count: 0, min: Infinity, max: 0 });
        last = p;
        return p.min === 1 && p.count === p.max ? p : undefined;
      }, 30_000).catch(() => undefined);
      if (!ok) this.violations.push(`${n}: batches missing at the coordinator (herd.batch.seq: ${last.count} samples from ${last.min} to ${last.max})`);
    }
  }

  report(results: StepResult[]): NemesisReport {
    const count = (xs: string[]) => xs.reduce<Record<string, number>>((a, x) => ({ ...a, [x]: (a[x] ?? 0) + 1 }), {});
    return {
      results,
      violations: this.violations,
      outcomes: count(results.map((r) => r.outcome)),
      faults: count(results.map((r) => r.step.fault)),
      maxRecoveredMs: Math.max(0, ...results.map((r) => r.recoveredMs)),
    };
  }
}

function call(client: any, method: string, req: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + 5000 }, (e: unknown, r: any) => {
      client.close();
      if (e) reject(e);
      else resolve(r);
    });
  });
}

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== null && (v as unknown) !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(200);
  }
}

export { connectedNodes };
