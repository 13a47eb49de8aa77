/**
 * The files around a checkpoint directory: putting it where Docker 20.10 looks for it at restore,
 * the nonce and metadata files written beside CRIU's images, and containerd's leaked copies.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RuntimeError } from './runtime';

/** The file checkpoint() writes beside CRIU's images: what the restore must put back. */
export const META = 'herd-checkpoint.json';
/** A unique file per restore: containerd then never finds the checkpoint's blob already in its store. */
export const NONCE = 'herd-nonce';

export interface CheckpointMeta {
  dockerId?: string;
  restartPolicy?: { Name?: string; MaximumRetryCount?: number };
  at?: string;
}

function cpA(src: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => execFile('cp', ['-a', src, dest], (err, _o, stderr) =>
    err ? reject(new RuntimeError(`cannot copy ${src} to ${dest}: ${stderr.trim() || err.message}`, 'INTERNAL')) : resolve()));
}

/**
 * Puts a checkpoint where Docker looks. dockerd bind-mounts its root dir onto itself, so a
 * rename into it works only from inside it (EXDEV otherwise, even on the same disk): stage
 * incoming checkpoints under DockerRootDir to keep a big checkpoint's copy off the downtime.
 */
export async function placeCheckpoint(src: string, dest: string, keep: boolean): Promise<'renamed' | 'copied'> {
  if (!keep) {
    try {
      fs.renameSync(src, dest);
      return 'renamed';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw new RuntimeError(`cannot move ${src} to ${dest}: ${(err as Error).message}`, 'INTERNAL');
    }
  }
  await cpA(src, dest);
  return 'copied';
}

export function readMeta(dir: string): CheckpointMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, META), 'utf8')) as CheckpointMeta;
  } catch {
    return undefined;
  }
}

export function ctrdLeaks(tmp: string): string[] {
  try {
    return fs.readdirSync(tmp).filter((f) => f.startsWith('ctrd-checkpoint'));
  } catch {
    return [];
  }
}

/**
 * containerd 1.6 leaves /tmp/ctrd-checkpoint<random>/, a full copy of the checkpoint, after every
 * restore, failed or not. Only the new ones holding this restore's nonce are ours: another
 * daemon on the host may be restoring right now.
 */
export function cleanLeaks(tmp: string, before: Set<string>, nonce: string): number {
  let n = 0;
  for (const f of ctrdLeaks(tmp)) {
    if (before.has(f)) continue;
    const dir = path.join(tmp, f);
    try {
      if (fs.readFileSync(path.join(dir, NONCE), 'utf8') !== nonce) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      n++;
    } catch { /* not ours, or gone */ }
  }
  return n;
}

