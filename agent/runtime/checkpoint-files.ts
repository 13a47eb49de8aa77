/**
 * The files around a checkpoint directory: putting it where Docker 20.10 looks for it at restore,
 * the nonce and metadata files written beside CRIU's images, and containerd's leaked copies.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CHECKPOINT_TYPES, scanTar } from './fsdiff';
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

/** Writes META into dir (created): what a restore (or a thaw) of this container must put back. */
export function writeMeta(dir: string, meta: CheckpointMeta): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, META), JSON.stringify({ ...meta, at: new Date().toISOString() }) + '\n');
}

function cpA(src: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => execFile('cp', ['-a', src, dest], (err, _o, stderr) =>
    err ? reject(new RuntimeError(`cannot copy ${src} to ${dest}: ${stderr.trim() || err.message}`, 'INTERNAL')) : resolve()));
}

/**
 * Unpacks a checkpoint tar that came from a peer into destDir (created if missing). A checkpoint
 * is CRIU's image files in directories: the whole tar is checked first (UnsafeArchiveError,
 * INVALID_ARGUMENT, naming the entry, and nothing extracted) and refused if it holds anything
 * else (symlinks, hard links, devices, fifos), an absolute name or a `..`. Files are owned by
 * the agent's user, whatever the tar says.
 */
export async function extractCheckpoint(tarPath: string, destDir: string): Promise<number> {
  if (!fs.existsSync(tarPath)) throw new RuntimeError(`checkpoint archive ${tarPath} does not exist`, 'NOT_FOUND');
  const entries = await scanTar(tarPath, { types: CHECKPOINT_TYPES, devices: 'none' });
  fs.mkdirSync(destDir, { recursive: true });
  await new Promise<void>((resolve, reject) => execFile('tar', ['-C', destDir, '--no-same-owner', '-xf', tarPath], { env: { ...process.env, LC_ALL: 'C' } }, (err, _o, stderr) =>
    err ? reject(new RuntimeError(`cannot extract checkpoint ${tarPath} into ${destDir}: ${stderr.trim() || err.message}`, 'INTERNAL', stderr.trim())) : resolve()));
  return entries;
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

