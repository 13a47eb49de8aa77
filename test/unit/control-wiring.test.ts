/**
 * The controller's wiring on the coordinator (coordinator/controller/): the snapshot built
 * from the real stores, records that travel in sample batches and survive a new
 * coordinator, the driver's evaluate/approve/settings, RunContainer's checks and its
 * burst-aware placement, and the CLI's parsing. Real LMDB stores; the only stand-ins are
 * the mesh's command sender and the node that starts a placed container (the integration
 * test test/integration/control.test.ts runs both for real).
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { openEnv, type Env } from '../../common/db';
import { meshCodec } from '../../common/proto';
import { SampleLog } from '../../agent/samplelog';
import { runSpec } from '../../agent/run';
import { SampleStore } from '../../coordinator/samplestore';
import { Registry, type ContainerRecord } from '../../coordinator/registry';
import { Migrations } from '../../coordinator/migrations';
import { controlModule, controlRecords } from '../../coordinator/controller/module';
import { Insecure } from '../../common/transport';
import { ControllerDriver } from '../../coordinator/controller/driver';
import { ControllerMetrics } from '../../coordinator/controller/metrics';
import { Registry as PromRegistry } from 'prom-client';
import { execFileSync } from 'node:child_process';
import { buildSnapshot, resample } from '../../coordinator/controller/snapshot-builder';
import { decisionFromWire, decisionToWire } from '../../coordinator/controller/wire';
import { checkRun, runContainerHandlers } from '../../coordinator/controller/run';
import { controlHandlers } from '../../coordinator/controller/admin';
import { DEFAULT_SETTINGS } from '../../coordinator/control/settings';
import type { DecisionRecord } from '../../common/decision';
import { settingsPatch } from '../../cli/control';
import { parseBytes } from '../../cli/run';
import { tempDir } from '../helpers/tmp';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function env(): Env {
  const t = tempDir();
  const e = openEnv(t.dir, { mapSizeBytes: 64 * 1024 ** 2 });
  cleanups.push(() => {
    void e.close();
    t.cleanup();
  });
  return e;
}

const NOW = 1_700_000_000_000;

function container(herdId: string, node: string, extra: Partial<ContainerRecord> = {}): ContainerRecord {
  return { herd_id: herdId, docker_id: `${herdId}-docker`, name: herdId, image: 'alpine', state: 'running', node_id: node, labels: [], pid: 1, created_ms: NOW - 60_000, ...extra };
}

/** A cluster in real stores: nodes with containers and a window of samples. */
async function cluster(e: Env, nodes: Array<{ id: string; cpu: number; labels?: Array<{ key: string; value: string }>; containers: Array<[string, number]> }>) {
  const store = new SampleStore(e);
  const registry = new Registry(e);
  const migrations = new Migrations(e);
  let seq = 0;
  for (const n of nodes) {
    registry.hello({ node_id: n.id, address: `127.0.0.1:${7400 + seq}`, arch: 'x64', cores: 4, memory_bytes: 8 * 1024 ** 3, labels: n.labels ?? [], capabilities: ['docker', 'criu'], version: 't', last_seen_ms: NOW });
    registry.inventory(n.id, n.containers.map(([h]) => container(h, n.id)), true);
    const offsets = Array.from({ length: 30 }, (_, i) => -29_000 + i * 1000);
    const series = [
      { entity: n.id, metric: 'host.cpu.total', offsets_ms: offsets, values: offsets.map(() => n.cpu * 100) },
      { entity: n.id, metric: 'host.mem.used_bytes', offsets_ms: offsets, values: offsets.map(() => 1e9) },
      { entity: n.id, metric: 'host.disk.active_pct', offsets_ms: offsets, values: offsets.map(() => 5) },
      ...n.containers.flatMap(([h, cores]) => [
        { entity: h, metric: 'container.cpu.usage', offsets_ms: offsets, values: offsets.map(() => cores) },
        { entity: h, metric: 'container.mem.usage_bytes', offsets_ms: offsets, values: offsets.map(() => 5e7) },
        { entity: h, metric: 'container.pids', offsets_ms: offsets, values: offsets.map(() => 1) },
      ]),
    ];
    void store.ingest(n.id, 'log', ++seq, NOW, series);
  }
  await e.committed;
  return { store, registry, migrations };
}

function decisionRecord(id: string, actions: DecisionRecord['actions']): DecisionRecord {
  return {
    id,
    atMs: NOW,
    term: 1,
    mode: 'recommend',
    policies: ['cpu-greedy'],
    trigger: 'evaluate-now',
    summary: { nodes: 2, containers: 2, judgedNodes: 2, judgedContainers: 2, meanCpu: 0.5, meanDiskActive: 0 },
    proposals: [{ herdId: 'c1', from: 'n1', to: 'n2', policy: 'cpu-greedy', score: 1, reason: 'because', figures: { gain: 0.3 } }],
    refusals: [{ herdId: 'c2', to: '', filter: 'pinned', reason: 'label herd.pin' }],
    actions,
    efficacy: { imbalanceBefore: 0.4, imbalanceAfter: 0.1, movedFraction: 0.5 },
    note: 'one move',
    evalMs: 1.5,
  };
}

describe('snapshot builder', () => {
  it('resamples onto one grid: the mean per step, NaN where no sample fell', () => {
    const w = resample([[NOW - 9_500, 1], [NOW - 9_100, 3], [NOW - 500, 7], [NOW - 20_000, 99]], NOW, 5, 2000);
    expect(w[0]).toBe(2);
    expect(w.slice(1, 4).every(Number.isNaN)).toBe(true);
    expect(w[4]).toBe(7);
  });

  it('builds nodes and containers from the stores; a node labelled herd.cores is loaded by its containers', async () => {
    const e = env();
    const c = await cluster(e, [
      { id: 'n1', cpu: 0.9, containers: [['a', 1.5]] },
      { id: 'n2', cpu: 0.9, labels: [{ key: 'herd.cores', value: '2' }], containers: [['b', 0.5]] },
    ]);
    const s = buildSnapshot(c, { nowMs: NOW, windowMs: 10_000, stepMs: 2000, historyMs: 60_000 });
    const n1 = s.nodes.find((n) => n.id === 'n1')!;
    const n2 = s.nodes.find((n) => n.id === 'n2')!;
    expect(n1.cpu).toHaveLength(5);
    expect(n1.cpu.every((v) => Math.abs(v - 0.9) < 1e-9)).toBe(true);
    expect(n1.criu && n1.connected && !n1.draining).toBe(true);
    expect(n2.cores).toBe(2);
    expect(n2.cpu.every((v) => Math.abs(v - 0.25) < 1e-9)).toBe(true); // 0.5 of 2 cores, not the machine's 90%
    const a = s.containers.find((x) => x.herdId === 'a')!;
    expect(a.node).toBe('n1');
    expect(a.cpu.every((v) => v === 1.5)).toBe(true);
    expect(a.ops.every(Number.isNaN)).toBe(true); // reports no ops: NaN, not 0
    expect(a.lastSampleMs).toBe(NOW);
  });

  it('a node labelled herd.disk_iops is loaded by its containers\' disk ops, not the machine\'s disk', async () => {
    const e = env();
    const c = await cluster(e, [
      { id: 'n1', cpu: 0.2, labels: [{ key: 'herd.disk_iops', value: '200' }], containers: [['a', 0.1], ['b', 0.1]] },
      { id: 'n2', cpu: 0.2, labels: [{ key: 'herd.disk_iops', value: '400' }], containers: [] },
    ]);
    const offsets = Array.from({ length: 10 }, (_, i) => -9_000 + i * 1000);
    void c.store.ingest('n1', 'log', 99, NOW, [
      { entity: 'a', metric: 'container.blkio.read_ops', offsets_ms: offsets, values: offsets.map(() => 60) },
      { entity: 'b', metric: 'container.blkio.read_ops', offsets_ms: offsets, values: offsets.map(() => 40) },
    ]);
    await e.committed;
    const s = buildSnapshot(c, { nowMs: NOW, windowMs: 10_000, stepMs: 2000, historyMs: 60_000 });
    const n1 = s.nodes.find((n) => n.id === 'n1')!;
    const n2 = s.nodes.find((n) => n.id === 'n2')!;
    expect(n1.diskIops).toBe(200);
    expect(n1.diskOps.every((v) => v === 100)).toBe(true);
    expect(n1.diskActive.every((v) => Math.abs(v - 0.5) < 1e-9)).toBe(true); // 100 of its 200 IOPS, not the machine's 5%
    expect(n2.diskOps.every((v) => v === 0) && n2.diskActive.every((v) => v === 0)).toBe(true); // empty: idle, not unknown
  });

  it('counts a container reported by two nodes mid-migration once, where it runs, as migrating', async () => {
    const e = env();
    const c = await cluster(e, [
      { id: 'n1', cpu: 0.5, containers: [['a', 1]] },
      { id: 'n2', cpu: 0.1, containers: [] },
    ]);
    c.registry.inventory('n2', [container('a', 'n2', { state: 'created' })], true);
    c.migrations.update({ migration_id: 'm1', herd_id: 'a', source_node_id: 'n1', target_node_id: 'n2', fs_mode: 'FS_MODE_DIFF', step: 'CHECKPOINT', state: 'RUNNING', bytes_done: 0, bytes_total: 0, timings: [], reason: '', started_ms: NOW - 1000, ended_ms: 0, downtime_ms: 0, target_docker_id: '', term: 1, version: 1, checkpoint_method: '', checkpoint_fallback_reason: '', restore_method: '', tcp_established: false });
    await e.committed;
    const s = buildSnapshot(c, { nowMs: NOW, windowMs: 10_000, stepMs: 2000, historyMs: 60_000 });
    expect(s.containers.filter((x) => x.herdId === 'a')).toHaveLength(1);
    expect(s.containers[0].node).toBe('n1');
    expect(s.containers[0].migrating).toBe(true);
    expect(s.migrations[0].outcome).toBe('RUNNING');
  });
});

describe('decision records', () => {
  it('round-trip through the wire form', () => {
    const d = decisionRecord('d-1-1', [{ herdId: 'c1', from: 'n1', to: 'n2', policy: 'cpu-greedy', reason: 'r', status: 'recommended', migrationId: '', detail: '' }]);
    expect(decisionFromWire(decisionToWire(d, 3))).toEqual({ record: d, revision: 3 });
  });

  it('travel in a sample batch and are rebuilt by another coordinator; the highest revision and settings version win', async () => {
    const e = env();
    const log = new SampleLog(e, 'n1');
    const d0 = decisionRecord('d-1-1', [{ herdId: 'c1', from: 'n1', to: 'n2', policy: 'cpu-greedy', reason: 'r', status: 'recommended', migrationId: '', detail: '' }]);
    const d1 = { ...d0, actions: [{ ...d0.actions[0], status: 'SUCCEEDED', migrationId: 'm1' }] };
    const settings = (v: number, mode: string) => ({ settings_json: JSON.stringify({ ...DEFAULT_SETTINGS, mode }), version: v, set_ms: NOW + v, set_by: 'operator:ops', term: 2 });
    await log.append([], [], [], { decisions: [decisionToWire(d1, 1)], policy: [settings(2, 'auto')] });
    await log.append([], [], [], { decisions: [decisionToWire(d0, 0)], policy: [settings(1, 'recommend'), { ...settings(3, 'auto'), settings_json: '{"mode":"sideways"}' }] });
    const next = controlRecords(env()); // a new coordinator's empty store
    for (const b of log.read(0, 10)) {
      const batch = meshCodec().decodeAgent(b.message).batch;
      next.recordBatch(batch.decisions, batch.policy);
    }
    expect(next.decisions(10)).toHaveLength(1);
    expect(next.decision('d-1-1')).toEqual({ record: d1, revision: 1 });
    expect(next.settings()?.version).toBe(2); // version 1 is older, version 3 is not valid settings
    expect(JSON.parse(next.settings()!.settings_json).mode).toBe('auto');
  });

  it('keeps the newest decisions only', async () => {
    const e = env();
    const r = controlRecords(e);
    for (let i = 0; i < 5; i++) r.putDecision({ ...decisionRecord(`d-${NOW + i}-1`, []), atMs: NOW + i }, 0);
    await e.committed;
    expect(r.trim(3)).toBe(2);
    await e.committed;
    expect(r.decisions(10).map((d) => d.record.id)).toEqual([`d-${NOW + 4}-1`, `d-${NOW + 3}-1`, `d-${NOW + 2}-1`]);
  });

  it('skips malformed records', () => {
    const r = controlRecords(env());
    r.recordBatch([{ id: '../x', at_ms: 1 }, { id: 'd-2', at_ms: 0 }, null, 'x'], [{ version: -1, settings_json: '{}' }, { version: 1, settings_json: 'not json' }]);
    expect(r.decisions(10)).toEqual([]);
    expect(r.settings()).toBeUndefined();
  });
});

async function driverSetup(nodes: Parameters<typeof cluster>[1], observer?: ControllerMetrics) {
  const e = env();
  const c = await cluster(e, nodes);
  const records = controlRecords(e);
  const commands: Array<{ node: string; cmd: any }> = [];
  const persisted: any[] = [];
  const ingest = {
    command: (node: string, cmd: any) => (commands.push({ node, cmd }), true),
    commandAll: () => [],
    settle: () => {},
  };
  const driver = new ControllerDriver({ ...c, records, migrate: { registry: c.registry, migrations: c.migrations, ingest, term: () => 4 }, term: () => 4, persist: (x) => persisted.push(x), observer, clock: () => NOW });
  return { ...c, env: e, records, driver, commands, persisted };
}

describe('controller driver', () => {
  it('settings: a patch merges, a bad field changes nothing and names the field and range', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.2, containers: [] }]);
    expect(t.driver.settingsVersion().version).toBe(0);
    t.driver.setSettings({ mode: 'recommend', schedule: { periodMs: 10_000 } }, false, 'operator:a');
    expect(t.driver.settings().mode).toBe('recommend');
    expect(t.driver.settings().schedule.periodMs).toBe(10_000);
    expect(t.driver.settings().schedule.windowMs).toBe(DEFAULT_SETTINGS.schedule.windowMs);
    for (const bad of [{ policies: ['nope'] }, { schedule: { periodMs: 0 } }, { thresholds: { 'cpu-greedy': { rewardThreshold: 1.5 } } }, { filters: { maxMissingFraction: -1 } }]) {
      expect(() => t.driver.setSettings(bad, false, 'operator:a')).toThrow(/policies|periodMs|rewardThreshold|maxMissingFraction/);
    }
    expect(t.driver.settingsVersion().version).toBe(1);
    expect(t.persisted.filter((p) => p.policy)).toHaveLength(1); // only the good one travelled
    t.driver.setSettings({}, true, 'operator:a');
    expect(t.driver.settings()).toEqual(DEFAULT_SETTINGS);
  });

  it('an evaluation is recorded and persisted even when it moves nothing', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.2, containers: [['a', 0.1]] }, { id: 'n2', cpu: 0.2, containers: [] }]);
    const d = await t.driver.evaluate('evaluate-now', 'recommend');
    expect(d.mode).toBe('recommend');
    expect(d.summary.nodes).toBe(2);
    expect(t.records.decision(d.id)?.record.id).toBe(d.id);
    expect(t.persisted.some((p) => p.decisions?.[0]?.id === d.id)).toBe(true);
    expect(t.commands).toEqual([]);
  });

  it('approve starts the recommended move through the migration path and records how it ended', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.9, containers: [['a', 1], ['b', 1]] }, { id: 'n2', cpu: 0.1, containers: [] }]);
    t.records.putDecision(decisionRecord('d-9-1', [{ herdId: 'a', from: 'n1', to: 'n2', policy: 'cpu-greedy', reason: 'r', status: 'recommended', migrationId: '', detail: '' }]), 0);
    expect(() => t.driver.approve('d-404', '')).toThrow(/no decision/);
    expect(() => t.driver.approve('d-9-1', 'zzz')).toThrow(/no a recommended move of container zzz/);
    const d = t.driver.approve('d-9-1', '');
    expect(d.actions[0].status).toBe('started');
    expect(t.commands).toHaveLength(1);
    expect(t.commands[0]).toMatchObject({ node: 'n1', cmd: { term: 4, migrate: { herd_id: 'a', target_node_id: 'n2' } } });
    const id = d.actions[0].migrationId;
    await t.env.committed;
    expect(t.migrations.get(id)?.state).toBe('PENDING');
    expect(() => t.driver.approve('d-9-1', '')).toThrow(/no a recommended move/); // once only
    t.migrations.update({ ...t.migrations.get(id)!, state: 'FAILED', reason: 'restore failed', ended_ms: NOW + 5, version: 5 });
    await new Promise((r) => setImmediate(r));
    const after = t.records.decision('d-9-1')!;
    expect(after.revision).toBe(2);
    expect(after.record.actions[0]).toMatchObject({ status: 'FAILED', detail: 'restore failed' });
  });

  it('counts evaluations, proposals, refusals, moves by outcome and evaluation time on /metrics, valid for promtool', async () => {
    const prom = new PromRegistry();
    const t = await driverSetup([{ id: 'n1', cpu: 0.9, containers: [['a', 1], ['b', 1]] }, { id: 'n2', cpu: 0.1, containers: [] }], new ControllerMetrics(prom));
    t.driver.setSettings({ policies: ['cpu-greedy'], hysteresisRounds: 1, schedule: { windowMs: 10_000 } }, false, 'operator:a');
    const d = await t.driver.evaluate('evaluate-now', 'recommend');
    t.records.putDecision(decisionRecord('d-9-3', [{ herdId: 'a', from: 'n1', to: 'n2', policy: 'cpu-greedy', reason: 'r', status: 'recommended', migrationId: '', detail: '' }, { herdId: 'b', from: 'n2', to: 'n1', policy: 'cpu-greedy', reason: 'r', status: 'recommended', migrationId: '', detail: '' }]), 0);
    const approved = t.driver.approve('d-9-3', '');
    expect(approved.actions.map((a) => a.status)).toEqual(['started', 'skipped']); // b is not on n2
    await t.env.committed;
    t.migrations.update({ ...t.migrations.get(approved.actions[0].migrationId)!, state: 'SUCCEEDED', ended_ms: NOW + 5, version: 5 });
    await new Promise((r) => setImmediate(r));
    const text = await prom.metrics();
    expect(text).toMatch(/^herd_controller_evaluations_total\{trigger="evaluate-now",mode="recommend"\} 1$/m);
    expect(text).toMatch(/^herd_controller_moves_total\{outcome="SUCCEEDED"\} 1$/m);
    expect(text).toMatch(/^herd_controller_moves_total\{outcome="skipped"\} 1$/m);
    expect(text).toMatch(/^herd_controller_evaluation_seconds_count 1$/m);
    for (const p of d.proposals) expect(text).toMatch(new RegExp(`^herd_controller_proposals_total\\{policy="${p.policy}"\\} \\d+$`, 'm'));
    for (const r of d.refusals) expect(text).toMatch(new RegExp(`^herd_controller_refusals_total\\{filter="${r.filter}"\\} \\d+$`, 'm'));
    expect(d.proposals.length).toBeGreaterThan(0); // the counters above were exercised
    expect(execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })).toBe('');
  });

  it('auto mode on the schedule: an overloaded node is relieved through the migration path; follow() stops the schedule', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.95, containers: [['a', 1.9], ['b', 1.9]] }, { id: 'n2', cpu: 0.05, containers: [] }]);
    t.driver.setSettings({ mode: 'auto', policies: ['cpu-greedy'], hysteresisRounds: 1, schedule: { firstAfterMs: 0, periodMs: 60_000, windowMs: 10_000 } }, false, 'operator:a');
    t.driver.lead();
    const deadline = Date.now() + 5000;
    while (!t.records.decisions(1).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    t.driver.follow();
    const [d] = t.records.decisions(5);
    expect(d.record.trigger).toBe('schedule');
    expect(d.record.actions).toHaveLength(1);
    expect(d.record.actions[0]).toMatchObject({ from: 'n1', to: 'n2', status: 'started' });
    expect(t.commands).toHaveLength(1);
    expect(t.commands[0].cmd.migrate.target_node_id).toBe('n2');
    expect(t.driver.nextEvaluationMs()).toBe(0);
  });

  it('a move a former coordinator started and did not see end is recorded from its replayed migration record', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.2, containers: [['a', 0.1]] }, { id: 'n2', cpu: 0.2, containers: [] }]);
    t.records.putDecision(decisionRecord('d-8-1', [{ herdId: 'a', from: 'n1', to: 'n2', policy: 'cpu-greedy', reason: 'r', status: 'started', migrationId: 'm-old', detail: '' }]), 1);
    t.migrations.update({ migration_id: 'm-old', herd_id: 'a', source_node_id: 'n1', target_node_id: 'n2', fs_mode: 'FS_MODE_DIFF', step: 'DONE', state: 'SUCCEEDED', bytes_done: 1, bytes_total: 1, timings: [], reason: '', started_ms: NOW - 9000, ended_ms: NOW - 8000, downtime_ms: 50, target_docker_id: 'x', term: 3, version: 9, checkpoint_method: '', checkpoint_fallback_reason: '', restore_method: '', tcp_established: false });
    await t.env.committed;
    await t.driver.evaluate('evaluate-now', 'recommend');
    await new Promise((r) => setImmediate(r));
    expect(t.records.decision('d-8-1')).toMatchObject({ revision: 2, record: { actions: [{ status: 'SUCCEEDED' }] } });
  });

  it('an approval is judged by the filters again: a move to a draining node is skipped, not started', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.9, containers: [['a', 1], ['b', 1]] }, { id: 'n2', cpu: 0.1, labels: [{ key: 'herd.draining', value: 'true' }], containers: [] }]);
    t.records.putDecision(decisionRecord('d-9-2', [{ herdId: 'a', from: 'n1', to: 'n2', policy: 'cpu-greedy', reason: 'r', status: 'recommended', migrationId: '', detail: '' }]), 0);
    const d = t.driver.approve('d-9-2', 'a');
    expect(d.actions[0].status).toBe('skipped');
    expect(d.actions[0].detail).toMatch(/draining/);
    expect(t.commands).toEqual([]);
  });
});

describe('records reach every node', () => {
  it('an agent that (re)connects gets the settings and the recent decisions again; the coordinator\'s own agent does not', async () => {
    const e = env();
    const c = await cluster(e, [{ id: 'n1', cpu: 0.2, containers: [] }]);
    const records = controlRecords(e);
    const sent: Array<{ node: string; cmd: any }> = [];
    const appended: any[] = [];
    const m = controlModule({ nodeId: 'n1', records, ...c, ingest: { command: (node, cmd) => (sent.push({ node, cmd }), true), commandAll: () => [], settle: () => {} }, transport: new Insecure(), term: () => 3, appendToLog: (r) => appended.push(r), leadership: { current: () => ({ isLeader: false, term: 3, sinceMs: 0 }), onChange: () => {} } });
    m.catchUp('n2');
    expect(sent).toEqual([]); // nothing to hand over yet
    m.driver.setSettings({ mode: 'recommend' }, false, 'operator:a');
    records.putDecision({ ...decisionRecord('d-1-1', []), atMs: Date.now() }, 2);
    records.putDecision({ ...decisionRecord('d-0-1', []), atMs: Date.now() - 3_600_000 }, 0); // too old to hand over again
    m.catchUp('n1');
    m.catchUp('n2');
    expect(sent).toHaveLength(1);
    expect(sent[0].node).toBe('n2');
    expect(sent[0].cmd.control.policy[0]).toMatchObject({ version: 1 });
    expect(sent[0].cmd.control.decisions.map((d: any) => [d.id, d.revision])).toEqual([['d-1-1', 2]]);
    expect(appended.filter((a) => a.policy)).toHaveLength(1); // SetPolicy went to the own log too
  });
});

describe('Admin control methods', () => {
  const call = (h: any, req: any) =>
    new Promise<any>((resolve, reject) => h({ request: req, getPeer: () => 'test', getAuthContext: () => ({}) }, (err: any, res: any) => (err ? reject(err) : resolve(res))));

  it('answer bad input with INVALID_ARGUMENT naming the field, and change nothing', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.2, containers: [] }]);
    const h = controlHandlers({ driver: t.driver, records: t.records });
    for (const req of [{ settings_json: '' }, { settings_json: '{' }, { settings_json: '{"mode":"sometimes"}' }, { settings_json: '{"thresholds":{"oltp-disk":{"missingSamples":2}}}' }, { settings_json: '[]' }]) {
      await expect(call(h.SetPolicy, req)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    }
    await expect(call(h.SetPolicy, { settings_json: '{"mode":"sometimes"}' })).rejects.toMatchObject({ details: expect.stringMatching(/mode/) });
    expect(t.records.settings()).toBeUndefined();
    await expect(call(h.EvaluateNow, { mode: 'off' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(call(h.ListDecisions, { limit: 5000 })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(call(h.ApproveDecision, { decision_id: '' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(call(h.ApproveDecision, { decision_id: 'd-0-0' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    const r = await call(h.SetPolicy, { settings_json: '{"mode":"recommend"}' });
    expect(JSON.parse(r.settings.settings_json).mode).toBe('recommend');
    expect(r.available.map((p: any) => p.name)).toContain('cpu-greedy');
    const d = await call(h.EvaluateNow, {});
    expect(d.mode).toBe('recommend');
    expect((await call(h.ListDecisions, {})).decisions.map((x: any) => x.id)).toEqual([d.id]);
  });
});

describe('RunContainer', () => {
  it('checks every field and names it', () => {
    expect(checkRun({ image: '' })).toMatch(/image is required/);
    expect(checkRun({ image: 'a b' })).toMatch(/image/);
    expect(checkRun({ image: 'alpine', env: ['1X=2'] })).toMatch(/env/);
    expect(checkRun({ image: 'alpine', cpus: NaN })).toMatch(/cpus/);
    expect(checkRun({ image: 'alpine', cpus: -1 })).toMatch(/cpus/);
    expect(checkRun({ image: 'alpine', memory_bytes: 10 })).toMatch(/memory_bytes/);
    expect(checkRun({ image: 'alpine', labels: [{ key: 'herd.id', value: 'x' }] })).toMatch(/herd.id/);
    expect(checkRun({ image: 'alpine', node_id: '../x' })).toMatch(/node_id/);
    expect(checkRun({ image: 'alpine:3.19', command: ['sh', '-c', 'sleep 1'], env: ['A=1'], cpus: 0.5, memory_bytes: 64 * 1024 ** 2 })).toBeUndefined();
  });

  it('the node side gets the herd id as a label, and the limits', () => {
    const spec = runSpec({ herd_id: 'h1', image: 'alpine', command: ['sleep', '9'], env: ['A=1'], labels: [{ key: 'k', value: 'v' }], cpus: 0.5, memory_bytes: 1e8, network: 'net1' });
    expect(spec).toMatchObject({ Image: 'alpine', Cmd: ['sleep', '9'], Env: ['A=1'], Labels: { k: 'v', 'herd.id': 'h1' }, HostConfig: { NanoCpus: 5e8, Memory: 1e8, NetworkMode: 'net1' } });
  });

  it('a burst spreads: placements since a node\'s last samples count; unknown node and impossible sizes change nothing', async () => {
    const t = await driverSetup([{ id: 'n1', cpu: 0.1, containers: [] }, { id: 'n2', cpu: 0.15, containers: [] }, { id: 'n3', cpu: 0.2, containers: [] }]);
    const started: string[] = [];
    const h = runContainerHandlers({
      snapshot: () => t.driver.snapshot(t.driver.settings(), NOW),
      settings: () => t.driver.settings(),
      term: () => 4,
      dockerReachable: () => true,
      runOn: async (node) => (started.push(node), { docker_id: `d-${started.length}` }),
      clock: () => NOW,
    });
    const call = (req: any) => new Promise<any>((resolve, reject) => (h.RunContainer as any)({ request: req }, (err: any, res: any) => (err ? reject(err) : resolve(res))));
    const placed = [];
    for (let i = 0; i < 3; i++) placed.push((await call({ image: 'alpine', cpus: 2 })).node_id);
    expect(new Set(placed).size).toBe(3); // not all on the idlest node
    await expect(call({ image: 'alpine', node_id: 'n9' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/node_id: no node "n9"/) });
    await expect(call({ image: 'alpine', memory_bytes: 2 ** 50 })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    await expect(call({ image: '' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(started).toHaveLength(3);
    const forced = await call({ image: 'alpine', node_id: 'n3' });
    expect(forced.node_id).toBe('n3');
    expect(forced.reason).toMatch(/--node/);
  });
});

describe('CLI parsing', () => {
  it('herd policy set KEY=VALUE pairs become a typed, nested patch', () => {
    expect(settingsPatch(['mode=auto', 'policies=balance,cpu-greedy', 'schedule.periodMs=10000', 'thresholds.cpu-greedy.rewardThreshold=0.2', 'x.y=NaN'])).toEqual({
      mode: 'auto',
      policies: ['balance', 'cpu-greedy'],
      schedule: { periodMs: 10000 },
      thresholds: { 'cpu-greedy': { rewardThreshold: 0.2 } },
      x: { y: 'NaN' },
    });
    expect(() => settingsPatch(['mode'])).toThrow(/KEY=VALUE/);
  });

  it('herd run --memory sizes', () => {
    expect(parseBytes('256m')).toBe(256 * 1024 ** 2);
    expect(parseBytes('1g')).toBe(1024 ** 3);
    expect(parseBytes('100')).toBe(100);
    expect(parseBytes('lots')).toBeUndefined();
  });
});
