/**
 * A checkpoint whose pages go straight to the target's page server (page-server.ts), in two dumps
 * through Docker's containerd:
 * 1. runc reads the CRIU config named by the container's `org.criu.config` label (added for this
 *    dump only): the pages go to the page server and the processes are left stopped. The images
 *    the target restores from are `sent` (everything but the pages, which are on the target).
 * 2. The pages are on the target only and Docker still lists the stopped container as running:
 *    beside the target's copy once that runs. A second dump, local, ends the task as every other
 *    checkpoint does (Docker shows it exited) and is what a rollback restores. CRIU cannot seize
 *    stopped processes in a frozen cgroup (ptrace_attach waits for them to run: the dump hangs),
 *    so they are frozen first (containerd's Pause), then continued: they wake into the freezer
 *    and never run, and CRIU dumps them as running ones.
 */
import fs from 'node:fs';
import type { CheckpointMeta } from './checkpoint-files';
import { writeMeta } from './checkpoint-files';
import type { ContainerdClient } from './containerd';
import { criuConfFile } from './fast-checkpoint';
import { continueStopped, dumpConfig, withCriuConfigLabel, type PageServerTls } from './page-server';

/** runc's host-wide CRIU config file (its settings are kept in a page-server dump's own file). */
const RUNC_CONF = '/etc/criu/runc.conf';

export interface PageServerDump {
  id: string;
  /** the container's init pid (its processes are continued inside the freezer between the dumps) */
  pid: number;
  /** runc's state.json of the container, where the label goes */
  stateJson: string;
  /** the first dump's images (pages on the target) */
  sent: string;
  /** the second, local dump's images and CRIU work dir */
  dir: string;
  work: string;
  to: { host: string; port: number; tls: PageServerTls };
  openTcp: boolean;
  /** written into dir before the second dump: a rollback after a crash finds the restart policy there */
  meta: CheckpointMeta;
  timeoutMs: number;
}

/** Both dumps. On a failure after the freeze the container is resumed (the migration rolls back). */
export async function dumpThroughPageServer(ctrd: ContainerdClient, d: PageServerDump): Promise<void> {
  await firstDump(ctrd, d);
  await ctrd.pause(d.id);
  try {
    continueStopped(d.pid, '/proc', true);
    writeMeta(d.dir, d.meta);
    await ctrd.checkpoint(d.id, { imagePath: d.dir, workPath: d.work, openTcp: d.openTcp }, d.timeoutMs);
  } catch (err) {
    // CRIU leaves the cgroup as it found it, frozen: the processes go on where they were
    await ctrd.resume(d.id).catch(() => undefined);
    throw err;
  }
}

/** The dump to the page server. Its config file goes right after it, so does the label. */
async function firstDump(ctrd: ContainerdClient, d: PageServerDump): Promise<void> {
  // the node's own runc.conf settings (log-file ...) go along: the label's file replaces it for this dump
  const base = fs.existsSync(RUNC_CONF) ? fs.readFileSync(RUNC_CONF, 'utf8').split('\n') : [];
  const conf = criuConfFile(d.sent);
  let undo: (() => void) | undefined;
  try {
    // inside the try: a full tmpfs fails the write half way, and the file goes all the same
    fs.writeFileSync(conf, dumpConfig(d.to.host, d.to.port, d.to.tls, base), { mode: 0o600 });
    undo = withCriuConfigLabel(d.stateJson, conf);
    await ctrd.checkpoint(d.id, { imagePath: d.sent, workPath: `${d.sent}.work`, openTcp: d.openTcp, exit: false }, d.timeoutMs);
  } finally {
    undo?.();
    fs.rmSync(conf, { force: true });
  }
}
