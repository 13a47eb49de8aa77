/**
 * The herd command line: `herd agent` runs a node; other commands talk to a running one.
 */
import { Command, Option } from 'commander';
import { ConfigError, parseSettings, readConfigFile } from '../agent/config';
import { registerDoctor } from './doctor';
import { registerStatus } from './status';
import { registerMigrate, registerMigrations } from './migrate';
import { registerPki } from './pki';
import { registerJoin } from './join';
import { registerNodes } from './nodes';
import { registerControl } from './control';
import { registerRun } from './run';
import { registerModel } from './model';
import { registerDataset } from './dataset';
import { registerSim } from './sim';
import { mergeFlags, TLS_SAN_HELP } from './flags';
import { setLogLevel, logger } from '../common/log';
import { VERSION } from '../common/version';

const log = logger('herd');

const program = new Command('herd')
  .description('Herd keeps containers on a small cluster running where they run best, by live-migrating them between nodes with CRIU.\nEvery node runs `herd agent`; the nodes pick one of themselves as coordinator.')
  .version(VERSION, '-V, --version', 'print the herd version')
  .showHelpAfterError('(run with --help for the options)');

const collect = (v: string, prev: string[] = []) => [...prev, v];
const num = (v: string) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v); // a non-number reaches the schema, which names the key

program
  .command('agent')
  .description('run this node: collect metrics, keep them in LMDB, stream them to the coordinator, and serve the gRPC API (Mesh, Admin, health, reflection)')
  .option('-c, --config <file>', 'JSON config file; flags override its keys (see docs/config.md)')
  .option('--node-id <id>', 'unique id of this node in the cluster (default: the host name)')
  .option('--data-dir <dir>', 'where the LMDB store lives (default: /var/lib/herd as root, else ~/.local/share/herd; env HERD_DATA_DIR)')
  .option('--listen <host:port>', 'gRPC listen address for Mesh, Admin, health and reflection (default: 0.0.0.0:7400)')
  .option('--advertise <host:port>', 'address other nodes reach this one at (default: the listen address, 0.0.0.0 replaced by the first IPv4 address)')
  .option('--peer <id=host:port>', 'another member of the cluster; repeat for each (none: a one-node cluster)', collect)
  .option('--docker-socket <path>', 'Docker engine socket (default: /var/run/docker.sock)')
  .option('--docker-timeout <ms>', 'first wait for one Docker list/inspect call; doubles (up to 8x) after a timeout (default: 10000)', num)
  .option('--pmproxy-url <url>', 'Performance Co-Pilot pmproxy URL, "" to turn PCP off (default: http://127.0.0.1:44322)')
  .option('--pcp-metric <name>', 'PCP metric to collect; repeat for each (default: kernel.all.load, disk.all.total, network.interface.total.bytes)', collect)
  .option('--cgroup-root <dir>', 'cgroupfs mount point (default: /sys/fs/cgroup)')
  .option('--no-page-server', 'migrations from this node send the memory pages after the dump as verified artifacts, not straight to a CRIU page server on the target while dumping')
  .option('--page-server-min-bytes <n>', 'the page server only for containers with at least this much memory in use; 0: for all (default: 64 MiB)', num)
  .option('--no-blkio-accounting', 'do not add the no-limit blkio throttle rule that makes kernels >= 6.10 count per-container block I/O on cgroup v1')
  .option('--host-interval <ms>', 'host metrics sampling period (default: 5000)', num)
  .option('--container-interval <ms>', 'per-container cgroup metrics sampling period (default: 5000)', num)
  .option('--track-interval <ms>', 'container tracking (inventory, application ops) period (default: 2000)', num)
  .option('--pcp-interval <ms>', 'PCP fetch period (default: 5000)', num)
  .option('--retention-hours <h>', 'keep acknowledged samples this long on this node (default: 168)', num)
  .option('--retention-bytes <n>', 'cap on the local sample log size, bytes (default: 2 GiB)', num)
  .option('--min-free-bytes <n>', 'stop storing samples below this much free space on the data dir\'s file system (default: 64 MiB)', num)
  .option('--max-in-flight <n>', 'most unacknowledged batches in flight to the coordinator (default: 64)', num)
  .option('--mesh-dead-after <ms>', 'no message from the coordinator for this long (dialling included): drop the stream and dial again (default: 6000)', num)
  .option('--label <key=value>', 'a label of this node; repeat for each', collect)
  .option('--tls-san <name>', TLS_SAN_HELP, collect)
  .option('--web-listen <host:port>', 'HTTPS (mutual TLS) address for /metrics; "" turns it off (default: the --listen address with the next port, 7401)')
  .option('--metrics-plain <host:port>', 'also serve /metrics in plain text here, for a Prometheus without a certificate (e.g. 127.0.0.1:9740; default: off)')
  .option('--insecure', 'serve and dial plain text instead of mutual TLS: anyone who reaches the port owns the node (lab use only; logged as a warning)')
  .addOption(new Option('--log-level <level>', 'log verbosity (default: info; env HERD_LOG_LEVEL)').choices(['debug', 'info', 'warn', 'error']))
  .action(async (opts) => {
    let settings;
    try {
      settings = parseSettings(mergeFlags(opts.config ? readConfigFile(opts.config) : {}, opts), opts.config ? `config file ${opts.config} and flags` : 'command-line flags');
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`herd: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    setLogLevel(settings.logLevel);
    // Signals are handled from the start: one arriving while the node starts stops it
    // as soon as it has started (the gRPC server may already answer by then).
    let node: Awaited<ReturnType<typeof import('../agent/node').startNode>> | undefined;
    let stopping: string | undefined;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = signal;
      log.info('stopping', { signal });
      const force = setTimeout(() => {
        log.error('the node did not stop within 10 s; exiting now', { waiting_for: node?.stopStep() ?? 'the node to finish starting' });
        process.exit(1);
      }, 10_000);
      force.unref();
      if (node) void node.stop().then(() => process.exit(0));
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    const { startNode } = await import('../agent/node');
    try {
      node = await startNode(settings);
    } catch (err) {
      if ((err as Error)?.constructor?.name === 'BootstrapError') {
        process.stderr.write(`herd: ${(err as Error).message}\n`);
        process.exit(2); // the operator must act (certificates), a restart will not help
      }
      log.error('cannot start the node', { error: err });
      process.exit(1);
    }
    if (stopping) void node.stop().then(() => process.exit(0));
  });

registerDoctor(program);
registerStatus(program);
registerMigrate(program);
registerMigrations(program);
registerPki(program);
registerJoin(program);
registerSim(program);
registerNodes(program); // after registerPki: adds `admin-cert revoke` to its admin-cert
registerControl(program);
registerRun(program);
registerModel(program);
registerDataset(program);

program.parseAsync(process.argv).catch((err) => {
  process.stderr.write(`herd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
