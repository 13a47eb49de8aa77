/**
 * Herd Control on a node: the records (kept whoever coordinates), the driver (runs while
 * this node coordinates) and the Admin methods, wired in one place so agent/node.ts only
 * plugs them in.
 */
import * as grpc from '@grpc/grpc-js';
import type { Registry as PromRegistry } from 'prom-client';
import type { Env } from '../../common/db';
import { loadProtos } from '../../common/proto';
import type { Transport } from '../../common/transport';
import { validateSettings } from '../control/settings';
import type { ForecastView, Snapshot } from '../control/snapshot';
import type { Ingest } from '../ingest';
import type { Leadership } from '../leadership';
import type { Migrations } from '../migrations';
import type { Registry } from '../registry';
import type { SampleStore } from '../samplestore';
import { controlHandlers } from './admin';
import { ControllerDriver, DELIVERY_ALLOWANCE_MS } from './driver';
import { ControllerMetrics } from './metrics';
import { ControlRecords, type SettingsVersion } from './records';
import { runContainerHandlers } from './run';
import { decisionToWire, type WireDecision } from './wire';

/** Decisions an agent gets again when it (re)connects: those of the last 10 minutes, at most 100. */
const CATCH_UP_MS = 10 * 60_000;
const CATCH_UP_DECISIONS = 100;
/** How long a node may take to create and start a placed container. */
const RUN_DEADLINE_MS = 60_000;

/** The records store: made before the mesh's Ingest, which feeds it from every batch. */
export function controlRecords(env: Env): ControlRecords {
  return new ControlRecords(env, (json) => {
    try {
      return validateSettings(JSON.parse(json)).ok;
    } catch {
      return false;
    }
  });
}

export interface ControlModuleDeps {
  nodeId: string;
  records: ControlRecords;
  store: SampleStore;
  registry: Registry;
  migrations: Migrations;
  ingest: Pick<Ingest, 'command' | 'commandAll' | 'settle'>;
  transport: Transport;
  term: () => number;
  /** Appends records to this node's own sample log. */
  appendToLog: (control: { decisions?: WireDecision[]; policy?: SettingsVersion[] }) => void;
  /** The model in force's forecast for a snapshot (coordinator/forecast/module.ts). */
  forecast?: (s: Snapshot) => Promise<ForecastView | undefined>;
  /** The controller runs while this node coordinates. */
  leadership: Pick<Leadership, 'current' | 'onChange'>;
  /** The node's /metrics registry: the controller's counters join it (herd_controller_*). */
  metrics?: PromRegistry;
}

export interface ControlModule {
  driver: ControllerDriver;
  catchUp: (nodeId: string) => void;
  handlers: grpc.UntypedServiceImplementation;
  /** Once the election runs: the schedule starts if this node already coordinates. */
  start(): void;
  stop(): void;
}

export function controlModule(deps: ControlModuleDeps): ControlModule {
  const persist = (control: { decisions?: WireDecision[]; policy?: SettingsVersion[] }) => {
    deps.appendToLog(control);
    deps.ingest.commandAll({ term: deps.term(), command_id: `control-${Date.now()}`, control }, deps.nodeId);
  };
  /**
   * An agent that (re)connects gets the settings and the recent decisions again: one made
   * while its stream was down (an election, a restart) would otherwise be on fewer nodes.
   * Its log may then hold a record twice; the highest version or revision wins anyway.
   */
  const catchUp = (nodeId: string) => {
    if (nodeId === deps.nodeId) return;
    const cutoff = Date.now() - CATCH_UP_MS;
    const decisions = deps.records.decisions(CATCH_UP_DECISIONS).filter((d) => d.record.atMs >= cutoff).map((d) => decisionToWire(d.record, d.revision));
    const policy = deps.records.settings();
    if (!decisions.length && !policy) return;
    deps.ingest.command(nodeId, { term: deps.term(), command_id: `control-catch-up-${Date.now()}`, control: { decisions, policy: policy ? [policy] : [] } });
  };
  const migrate = { registry: deps.registry, migrations: deps.migrations, ingest: deps.ingest, term: deps.term };
  const driver = new ControllerDriver({ registry: deps.registry, store: deps.store, migrations: deps.migrations, records: deps.records, migrate, term: deps.term, persist, forecast: deps.forecast, observer: deps.metrics && new ControllerMetrics(deps.metrics) });
  const { herd } = loadProtos();
  const runOn = (nodeId: string, req: Record<string, unknown>) =>
    new Promise<{ docker_id: string }>((resolve, reject) => {
      const address = deps.registry.get(nodeId)?.address ?? '';
      const client = new herd.Peer(address, deps.transport.credentials(nodeId), deps.transport.channelOptions);
      client.RunContainer(req, { deadline: Date.now() + RUN_DEADLINE_MS }, (err: grpc.ServiceError | null, res: any) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      });
    });
  const run = runContainerHandlers({
    snapshot: () => driver.snapshot(driver.settings(), Date.now() - DELIVERY_ALLOWANCE_MS),
    settings: () => driver.settings(),
    term: deps.term,
    dockerReachable: (id) => Boolean(deps.registry.get(id)?.docker_reachable),
    runOn,
  });
  // The schedule runs on the coordinator only: it starts when this node takes over, stops when it hands over.
  deps.leadership.onChange((v) => (v.isLeader ? driver.lead() : driver.follow()));
  return {
    driver,
    catchUp,
    handlers: { ...controlHandlers({ driver, records: deps.records }), ...run },
    start: () => {
      if (deps.leadership.current().isLeader) driver.lead();
    },
    stop: () => driver.follow(),
  };
}
