/**
 * A Herd node: the controller that starts and stops its modules. Every node runs the
 * agent modules (collectors, sample log, uplink) and one gRPC server; the coordinator
 * modules (ingest, admin) answer only while this node is the leader.
 */
import { StorageGuard } from '../common/storage';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import os from 'node:os';
import { leaveStoresToExit, openEnv, type Env } from '../common/db';
import { logger } from '../common/log';
import { loadProtos } from '../common/proto';
import { addReflection, DescriptorIndex } from '../common/reflection';
import { VERSION } from '../common/version';
import { enlargeServerWindow, enlargeSessionWindows } from '../common/window';
import { adminHandlers } from '../coordinator/admin';
import { DEFAULT_INGEST, Ingest } from '../coordinator/ingest';
import { ElectionDriver } from '../coordinator/election/driver';
import { TermFence } from '../common/fencing';
import { Registry } from '../coordinator/registry';
import { SampleStore } from '../coordinator/samplestore';
import { webListen, type Settings } from './config';
import { startWeb } from './metrics/http';
import { NodeMetrics } from './metrics/node-metrics';
import { registerNodeGauges } from './metrics/node-gauges';
import { coordinatorWeb } from '../coordinator/web/serve';
import { leaderOnly } from '../coordinator/leader-only';
import { watchLmdbWriteFailures } from './storage-watch';
import { inventoryOf } from './inventory';
import { containerCollection, engineRuntime } from './local-engine';
import { advertiseFrom } from './advertise';
import { DrainState } from './drain';
import { migrationFaultsFromEnv } from './migration/faults';
import { MigrationRunner } from './migration/runner';
import { MigrationTarget } from './migration/target';
import { ArtifactRegistry } from './transfer/artifacts';
import { faultsFromEnv } from './transfer/faults';
import { transferService } from './transfer/server';
import { Migrations } from '../coordinator/migrations';
import { migrateHandlers, MigrateStreams, settleUnfinished } from '../coordinator/migrate';
import { drainHandlers } from '../coordinator/drain';
import { datasetHandlers } from '../coordinator/forecast/dataset-export';
import { SampleLog } from './samplelog';
import { DEFAULT_UPLINK, Uplink } from './uplink';
import { authorizer } from './security/authorize';
import { boundedStatus } from './security/bounded-status';
import { ensureCertificates, nodeTransport } from './security/bootstrap';
import { RevocationStore } from '../common/revocations';
import { joinHandlers } from './security/join';
import { certificateRenewer, recoverRenewal, renewalHandlers, type CertificateRenewer } from './security/renewal';
import { renewNowHandlers } from './security/renew-now';
import { localSans } from '../common/sans';
import { AuditTrail } from '../coordinator/audit';
import { securityAdminHandlers } from '../coordinator/security-admin';
import { controlModule, controlRecords } from '../coordinator/controller/module';
import { DELIVERY_ALLOWANCE_MS } from '../coordinator/controller/driver';
import { modelModule, modelStore } from '../coordinator/forecast/module';
import { peerRunHandlers } from './run';
import { ClusterTls, type Transport } from '../common/transport';

const log = logger('node');

export interface RunningNode {
  settings: Settings;
  address: string;
  port: number;
  env: Env;
  sampleLog: SampleLog;
  store: SampleStore;
  uplink: Uplink;
  transport: Transport;
  revocations: RevocationStore;
  /** Port of the HTTPS /metrics server (0: off), and of the plain one. */
  webPort: number;
  plainMetricsPort: number;
  stop(): Promise<void>;
  /** What stop() is waiting for now: named in the log when a stop takes too long. */
  stopStep(): string;
}

export async function startNode(settings: Settings): Promise<RunningNode> {
  const advertise = settings.advertise ?? advertiseFrom(settings.listen);
  await ensureCertificates(settings, advertise);
  if (!settings.insecure) recoverRenewal(settings.dataDir); // a renewal a crash interrupted
  const env = openEnv(settings.dataDir);
  const revocations = new RevocationStore(env);
  const transport = nodeTransport(settings, revocations);
  const audit = new AuditTrail(env);
  const storage = new StorageGuard(settings.dataDir, { minFreeBytes: settings.retention.minFreeBytes });
  watchLmdbWriteFailures(storage);
  const sampleLog = new SampleLog(env, settings.nodeId, Date.now, storage);
  const store = new SampleStore(env, storage);
  const registry = new Registry(env);
  const migrations = new Migrations(env);
  const control = controlRecords(env);
  const models = modelStore(env);
  const { runtime, capabilities, criuChecked } = engineRuntime(settings);
  const faults = migrationFaultsFromEnv(process.env.HERD_FAULTS);
  let selfAddress = advertise; // with the real port once the server is bound
  let fatal = (err: unknown): void => {
    throw err;
  };
  const leadership = new ElectionDriver({ self: { id: settings.nodeId, address: advertise }, peers: settings.peers, env, transport, onFatal: (err) => fatal(err) });

  const fence = new TermFence({ highest: leadership.current().term });

  // --- agent modules
  const collection = containerCollection(settings, sampleLog);
  const tracker = collection.tracker;
  const metrics = new NodeMetrics({ nodeId: settings.nodeId, containers: () => tracker.containers().map((c) => ({ herdId: c.herdId, name: c.name })) });
  sampleLog.onAppend((samples) => metrics.observeSamples(samples));
  const drain = new DrainState(env, settings.labels);

  const uplink = new Uplink({
    ...DEFAULT_UPLINK,
    fence,
    maxInFlight: settings.maxInFlight,
    deadAfterMs: settings.meshDeadAfterMs,
    log: sampleLog,
    transport,
    target: () => leadership.current().leaderAddress,
    targetId: () => leadership.current().leaderId,
    onCommand: (cmd) => {
      if (cmd?.kind === 'migrate' || cmd?.migrate) void runner.start(cmd.migrate, Number(cmd.term)).catch((err) => log.error('migration failed to start', { error: err }));
      if (cmd?.kind === 'settle_migration' || cmd?.settle_migration) void runner.settle(cmd.settle_migration, Number(cmd.term)).catch((err) => log.error('answering about a migration failed', { error: err }));
      if (cmd?.kind === 'revocations' || cmd?.revocations) void revocations.merge(cmd.revocations?.entries ?? []).catch((err) => log.error('storing revocations failed', { error: err }));
      // The controller's records, kept here too: they survive the coordinator's node.
      if (cmd?.kind === 'control' || cmd?.control) appendControl({ decisions: cmd.control?.decisions ?? [], policy: cmd.control?.policy ?? [], models: cmd.control?.models ?? [] });
      if (cmd?.kind === 'drain' || cmd?.drain) {
        const want = Boolean(cmd.drain?.draining);
        void drain.set(want, String(cmd.drain?.by ?? '')).then(
          () => {
            log.info(want ? 'draining: no migrations to this node until it is undrained' : 'undrained: this node takes migrations again', { by: cmd.drain?.by || '-' });
            uplink.sendLabels(drain.labels());
          },
          (err) => log.error('storing the drain mark failed', { error: err }),
        );
      }
    },
    hello: () => ({
      node_id: settings.nodeId,
      address: selfAddress,
      arch: process.arch,
      cores: os.cpus().length,
      memory_bytes: os.totalmem(),
      labels: drain.labels(),
      term: fence.highest,
      capabilities: [...(tracker.reachable ? ['docker'] : []), ...capabilities],
      log_id: sampleLog.logId,
      version: VERSION,
      revocations: revocations.list(),
    }),
    inventory: () => inventoryOf(tracker, settings.nodeId),
  });
  tracker.onChange(() => uplink.sendInventory());

  // --- coordinator modules, behind the leadership check
  const ingest = new Ingest(
    store,
    registry,
    {
      ...DEFAULT_INGEST,
      coordinatorId: settings.nodeId,
      maxInFlight: settings.maxInFlight,
      term: () => leadership.current().term,
      leadership: () => leadership.current(),
    },
    migrations,
    {
      revocations,
      audit,
      control,
      models,
      connected: (node) => {
        controller.catchUp(node);
        modelService.catchUp(node);
        // migrations an earlier coordinator left open, asked of their source (it owns them)
        settleUnfinished({ migrations, ingest, term: () => leadership.current().term }, node);
      },
    },
  );
  const admin = adminHandlers({
    store,
    registry,
    leader: () => {
      const v = leadership.current();
      return { leader_id: v.leaderId ?? '', address: v.leaderAddress ?? '', term: v.term, since_ms: v.sinceMs, answered_by: settings.nodeId };
    },
    cluster: () => {
      const c = leadership.cluster();
      return { answered_by: settings.nodeId, term: c.term, leader_id: c.leaderId, members: c.members };
    },
  });

  const { herd, reflection, descriptorSet } = loadProtos();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    // Every call passes here first: authentication, roles, and the audit trail.
    interceptors: [
      boundedStatus(),
      authorizer(transport, {
        nodeId: settings.nodeId,
        audit: (event) => void sampleLog.append([], [], [event]).catch((err) => log.error('storing an audit event failed', { error: err })),
      }),
    ],
  });
  server.addService(herd.Mesh.service, { Connect: ingest.connect });
  const migrateStreams = new MigrateStreams();
  const migrationAdmin = migrateHandlers({
    registry,
    migrations,
    ingest,
    term: () => leadership.current().term,
    streams: migrateStreams,
  });
  const securityAdmin = securityAdminHandlers({ revocations, audit, registry, nodeId: settings.nodeId, knownNodes: () => settings.peers.map((p) => p.id) });
  // Joining: every node serves Join (forwarding to the CA holder); the CA holder makes tokens whoever leads.
  const joining = joinHandlers({
    nodeId: settings.nodeId,
    dataDir: settings.dataDir,
    nodeCertTtlSeconds: settings.tls.nodeCertTtlSeconds,
    env,
    transport,
    cluster: () => leadership.cluster(),
    peers: settings.peers,
    revokedAt: (id) => revocations.list().find((r) => r.kind === 'IDENTITY_KIND_NODE' && r.name === id)?.revoked_at_ms,
  });
  server.addService(herd.Join.service, joining.join);
  const appendControl = (records: { decisions?: unknown[]; policy?: unknown[]; models?: unknown[] }) => void sampleLog.append([], [], [], records).catch((err) => log.error('storing controller records failed', { error: err }));
  const modelService = modelModule({
    nodeId: settings.nodeId,
    models,
    sources: { registry, store, migrations },
    ingest,
    term: () => leadership.current().term,
    snapshot: () => controller.driver.snapshot(controller.driver.settings(), Date.now() - DELIVERY_ALLOWANCE_MS),
    appendToLog: appendControl,
  });
  const controller = controlModule({ nodeId: settings.nodeId, records: control, store, registry, migrations, ingest, transport, term: () => leadership.current().term, appendToLog: appendControl, leadership, metrics: metrics.registry, forecast: (s) => modelService.service.view(s) });
  const datasetAdmin = datasetHandlers({ registry, store, migrations });
  const drainAdmin = drainHandlers({ registry, store, command: (node, cmd) => ingest.command(node, cmd), term: () => leadership.current().term });
  let renewer: CertificateRenewer | undefined; // made once the node serves (below)
  const renewNow = renewNowHandlers({ nodeId: settings.nodeId, secure: transport.secure, renewer: () => renewer });
  server.addService(
    herd.Admin.service,
    leaderOnly({ ...admin, ...migrationAdmin, ...securityAdmin, ...drainAdmin, ...controller.handlers, ...modelService.handlers, ...joining.admin, ...renewNow, ...datasetAdmin }, leadership, ['GetLeader', 'GetCluster', 'CreateJoinToken', 'RenewNodeCertificate']),
  );

  // --- migration: this node as a source (runner, artifacts served) and as a target
  const artifacts = new ArtifactRegistry();
  const target = new MigrationTarget({ nodeId: settings.nodeId, env, runtime, dataDir: settings.dataDir, fence, faults, transport });
  server.addService(herd.Peer.service, {
    Exchange: leadership.exchange,
    ...target.handlers(),
    ...joining.peer,
    ...renewalHandlers({ nodeId: settings.nodeId, dataDir: settings.dataDir, transport, ttlSeconds: settings.tls.nodeCertTtlSeconds }),
    ...peerRunHandlers({ nodeId: settings.nodeId, fence, runtime }),
  });
  server.addService(herd.Transfer.service, transferService(artifacts, { faults: faultsFromEnv(process.env.HERD_FAULTS), onBytes: (n) => metrics.transferBytes.inc(n) }));
  const health = new HealthImplementation({ '': 'SERVING', 'herd.v1.Mesh': 'SERVING', 'herd.v1.Admin': 'SERVING', 'herd.storage': storage.status().ok ? 'SERVING' : 'NOT_SERVING' });
  // `herd.storage`: whether this node can store what it collects (docs/config.md, retention.minFreeBytes).
  storage.onChange((s) => health.setStatus('herd.storage', s.ok ? 'SERVING' : 'NOT_SERVING'));
  health.addToServer(server);
  addReflection(server, new DescriptorIndex(descriptorSet), reflection, ['herd.v1.Admin', 'herd.v1.Join', 'herd.v1.Mesh', 'herd.v1.Peer', 'herd.v1.Transfer', 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']);

  enlargeServerWindow(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(settings.listen, transport.serverCredentials(), (err, p) => (err ? reject(new Error(`cannot listen on ${settings.listen}: ${err.message}`)) : resolve(p))),
  );
  enlargeSessionWindows(server);
  const address = advertise.replace(/:0$/, `:${port}`);
  leadership.setSelfAddress(address);
  selfAddress = address;
  const runner = new MigrationRunner({
    nodeId: settings.nodeId,
    // HERD_PAGE_SERVER=0: off whatever the settings say (benches compare both paths)
    pageServer: settings.pageServer && process.env.HERD_PAGE_SERVER !== '0',
    pageServerMinBytes: settings.pageServerMinBytes,
    address: () => address,
    env,
    runtime,
    artifacts,
    dataDir: settings.dataDir,
    faults,
    transport,
    findContainer: (herdId) => {
      const c = tracker.containers().find((x) => x.herdId === herdId && x.state === 'running');
      return c && { dockerId: c.dockerId, name: c.name, memoryInUse: collection.cgroups.memoryInUse(herdId) };
    },
    publish: (record) => {
      metrics.observeMigration(record);
      return sampleLog.append([], [record]);
    },
  });

  // Agents follow the coordinator; a node that stops being it ends every agent stream.
  let lastTarget = leadership.current().leaderAddress;
  let lastLeader = leadership.current().leaderId;
  metrics.observeLeadership(leadership.current(), false);
  leadership.onChange((v) => {
    metrics.observeLeadership(v, v.leaderId !== lastLeader);
    lastLeader = v.leaderId;
    fence.observe(v.term);
    if (!v.isLeader) migrateStreams.stepDown({ id: v.leaderId, address: v.leaderAddress, askAt: settings.peers[0]?.address });
    if (!v.isLeader) ingest.closeAll(v.leaderId ? `this node is no longer the coordinator: ${v.leaderId} at ${v.leaderAddress} is` : 'this node is no longer the coordinator');
    if (v.leaderAddress !== lastTarget) {
      lastTarget = v.leaderAddress;
      uplink.retarget();
    }
  });

  await collection.start();
  leadership.start();
  controller.start();
  await criuChecked;
  uplink.start();
  // Renews this node's certificate before it expires (signed by the CA key holder), no restart.
  renewer = certificateRenewer(transport, {
    nodeId: settings.nodeId,
    dataDir: settings.dataDir,
    renewBeforeFraction: settings.tls.renewBeforeFraction,
    checkMs: settings.tls.checkMs,
    ttlSeconds: settings.tls.nodeCertTtlSeconds,
    address: () => selfAddress,
    names: () => localSans(settings.tls.sans),
    addressOf: (id) => leadership.cluster().members.find((m) => m.node_id === id)?.address ?? settings.peers.find((p) => p.id === id)?.address,
  });
  renewer?.start();
  void runner.recover().catch((err) => log.error('resuming interrupted migrations failed', { error: err }));

  const retentionMs = settings.retention.maxAgeHours * 3600_000;
  const pruneTimer = setInterval(() => {
    void sampleLog.prune(uplink.ackedSeq(), { maxAgeMs: retentionMs, maxBytes: settings.retention.maxBytes }).catch((err) => log.error('pruning the sample log failed', { error: err }));
    if (leadership.current().isLeader) void store.pruneOlderThan(Date.now() - retentionMs).catch((err) => log.error('pruning stored samples failed', { error: err }));
  }, 60_000);
  pruneTimer.unref();

  registerNodeGauges(metrics, sampleLog, uplink);
  const page = coordinatorWeb({ prom: metrics.registry, nodeId: settings.nodeId, registry, store, migrations, leadership, decisions: (n) => control.decisions(n).map((d) => d.record) });
  const web = await startWeb({ listen: webListen(settings), plainMetrics: settings.web.plainMetrics, transport, metrics, routes: page });

  const lead = leadership.current();
  log.info('herd node started', {
    node: settings.nodeId,
    listen: settings.listen,
    port,
    web: web.port || 'off',
    advertise: address,
    data_dir: settings.dataDir,
    coordinator: lead.isLeader ? 'this node' : `${lead.leaderId} at ${lead.leaderAddress}`,
    docker: tracker.reachable ? settings.dockerSocket : 'unreachable',
    security: transport instanceof ClusterTls ? `mutual TLS (prefers ${transport.cipher})` : 'INSECURE plain text',
    version: VERSION,
  });

  let stopping: Promise<void> | undefined;
  let stopStep = 'not stopping';
  const step = <T>(name: string, f: () => T): T => { stopStep = name; return f(); };
  const running: RunningNode = {
    settings,
    address,
    port,
    env,
    sampleLog,
    store,
    uplink,
    transport,
    revocations,
    webPort: web.port,
    plainMetricsPort: web.plainPort,
    stop: () =>
      (stopping ??= (async () => {
        // A coordinator that stops on purpose hands its role over first: the others then
        // need a vote round, not an election timeout (docs/election.md).
        await step('handing the coordinator role over', () => leadership.handOver());
        clearInterval(pruneTimer);
        controller.stop();
        await step('closing the model service', () => modelService.service.close());
        uplink.stop();
        renewer?.stop();
        runner.stop();
        target.close();
        leadership.stop();
        await step('stopping the collectors', () => collection.stop());
        await step('closing the web server', () => web.close());
        ingest.closeAll('the coordinator is shutting down');
        await step('waiting for open gRPC calls to end', () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
        server.forceShutdown();
        // After a failed commit lmdb-js's close aborts the process (heap corruption); every
        // commit is durable without it, so the store is left to the exit.
        if (storage.sawWriteFailure) {
          // lmdb-js would close it at exit all the same (its 'exit' listener): that goes too
          leaveStoresToExit();
          log.warn('not closing the store after a failed write; it is consistent as committed');
        } else await step('closing the store', () => env.close());
        stopStep = 'stopped';
        log.info('herd node stopped', { node: settings.nodeId });
      })()),
    stopStep: () => stopStep,
  };
  fatal = (err) => {
    log.error('fatal: stopping the node', { error: err });
    void running.stop().finally(() => process.exit(1));
  };
  return running;
}
