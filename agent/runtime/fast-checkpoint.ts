/**
 * The fast path of a checkpoint and a restore (../shared/recipes/fast-checkpoint.md): CRIU's
 * images live on a tmpfs of the agent's own, never in containerd's content store.
 * - checkpoint: containerd's Tasks.Checkpoint with `image_path` on that tmpfs (containerd.ts);
 * - restore: `docker start --checkpoint` from a checkpoint dir in Docker's root whose big images
 *   are *relative* symlinks to the tmpfs. Docker tars that dir, containerd untars it into
 *   `<its tmp dir>/ctrd-checkpoint<random>/` (the links stay links) and runc/CRIU open the images
 *   through them: a relative link resolves next to itself, so the tmpfs is mounted inside
 *   containerd's tmp dir. An absolute link would be resolved inside the container's root (CRIU
 *   opens page images after entering the restored mount namespace).
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ContainerdClient, findContainerd, type ContainerdLocation } from './containerd';
import { TMPFS_MAGIC } from './criu';
import { RuntimeError } from './runtime';

/** Files of a checkpoint above this size are linked, not copied (CRIU's pages, ghost files, tmpfs contents). */
export const LINK_ABOVE_BYTES = 256 << 10;

/** The image tmpfs of the agent serving one Docker socket: under containerd's tmp dir, one per engine. */
export function imageRootFor(dockerSocket: string, containerdTmpDir: string): string {
  const tag = createHash('sha256').update(path.resolve(dockerSocket)).digest('hex').slice(0, 10);
  return path.join(containerdTmpDir, `herd-images-${tag}`);
}

export function isTmpfs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** Mounts a tmpfs at dir unless one is there (mode 0700: CRIU's images hold the container's memory). */
export async function ensureTmpfs(dir: string, sizeOption = ''): Promise<void> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (isTmpfs(dir)) return;
  const opts = ['mode=0700', ...(sizeOption ? [`size=${sizeOption}`] : [])].join(',');
  await new Promise<void>((resolve, reject) => execFile('mount', ['-t', 'tmpfs', '-o', opts, 'herd-images', dir], (err, _o, stderr) =>
    err ? reject(new RuntimeError(`cannot mount a tmpfs for checkpoint images at ${dir}: ${stderr.trim() || err.message}`, 'FAILED_PRECONDITION')) : resolve()));
}

/** The direct path to containerd and the image tmpfs, or why there is none. */
export type FastPath = { ok: true; ctrd: ContainerdClient; loc: ContainerdLocation; imageRoot: string } | { ok: false; reason: string };

/** Finds the containerd behind a Docker socket and mounts the image tmpfs in its tmp dir. */
export async function probeFastPath(dockerSocket: string, o: { containerdTmpDir?: string; imageTmpfsSize?: string } = {}): Promise<FastPath> {
  const loc = findContainerd(dockerSocket);
  if (!loc) return { ok: false, reason: `no dockerd on this host serves ${dockerSocket}, so its containerd cannot be found` };
  if (o.containerdTmpDir) loc.tmpDir = o.containerdTmpDir;
  const imageRoot = imageRootFor(dockerSocket, loc.tmpDir);
  try {
    await ensureTmpfs(imageRoot, o.imageTmpfsSize);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  return { ok: true, ctrd: new ContainerdClient(loc.socket), loc, imageRoot };
}

/** Where a direct checkpoint asked for `<checkpointDir>/<name>` puts its images: on the image tmpfs. */
export function fastCheckpointDir(imageRoot: string, checkpointDir: string, name: string): string {
  return path.join(imageRoot, `${path.basename(checkpointDir)}.${name}`);
}

/**
 * Where a page-server checkpoint's first dump puts the images the target restores from (its
 * pages went to the target); `dir` holds the second, local dump a rollback restores.
 */
export const sentDirOf = (dir: string): string => `${dir}.sent`;

/** The CRIU config file of a page-server dump into imagesDir (beside it, on the image tmpfs). */
export const criuConfFile = (imagesDir: string): string => `${imagesDir}.criu.conf`;

/**
 * Every path a checkpoint into dir may leave on the image tmpfs: the images, the tar of the
 * small ones, CRIU's work dir, and on the page-server path the first dump's images, tar, work
 * dir and CRIU config (a crash of the agent mid-dump leaves any of them).
 */
export function checkpointFiles(dir: string): string[] {
  const sent = sentDirOf(dir);
  return [dir, `${dir}.tar`, `${dir}.work`, sent, `${sent}.tar`, `${sent}.work`, criuConfFile(sent)];
}

/** Whether a path lies inside root (both resolved; root itself does not count). */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** CRIU's memory pages, or any image big enough to be worth moving and linking as it is (not packed). */
export function isBigImage(name: string, size: number): boolean {
  return /^pages-\d+\.img$/.test(name) || size > LINK_ABOVE_BYTES;
}

/**
 * A checkpoint dir's files split for the transfer: the big images travel as they are, one
 * artifact each (no tar copy of the memory on either side), the rest in one small tar.
 */
export function splitCheckpoint(dir: string): { small: string[]; big: string[] } {
  const out = { small: [] as string[], big: [] as string[] };
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!d.isFile()) continue;
    (isBigImage(d.name, fs.statSync(path.join(dir, d.name)).size) ? out.big : out.small).push(d.name);
  }
  return out;
}

/** The artifact a big image travels as, and back (the target checks the name: IMAGE_ARTIFACT). */
export const imageArtifact = (file: string): string => `image.${file}`;
export const IMAGE_ARTIFACT = /^image\.([A-Za-z0-9][A-Za-z0-9._-]{0,200})$/;

export interface LinkPlan { copy: string[]; link: Array<{ name: string; target: string }> }

/**
 * Which files of a checkpoint (name, size) to copy and which to link, and each link's target as
 * seen from `<ctrdTmp>/ctrd-checkpoint<random>/`, where containerd unpacks it (pure).
 */
export function planLinks(files: Array<{ name: string; size: number }>, srcDir: string, ctrdTmp: string): LinkPlan {
  const from = path.join(path.resolve(ctrdTmp), 'ctrd-checkpoint');
  const plan: LinkPlan = { copy: [], link: [] };
  for (const f of files) {
    if (isBigImage(f.name, f.size)) plan.link.push({ name: f.name, target: path.relative(from, path.join(path.resolve(srcDir), f.name)) });
    else plan.copy.push(f.name);
  }
  return plan;
}

/** Builds the checkpoint dir Docker reads (dest, created) from the images on the tmpfs (srcDir). */
export function linkCheckpoint(srcDir: string, dest: string, ctrdTmp: string): LinkPlan {
  const files = fs.readdirSync(srcDir, { withFileTypes: true }).map((d) => {
    if (!d.isFile()) throw new RuntimeError(`${path.join(srcDir, d.name)} is not a regular file: a checkpoint holds CRIU's image files only`, 'INVALID_ARGUMENT');
    return { name: d.name, size: fs.statSync(path.join(srcDir, d.name)).size };
  });
  const plan = planLinks(files, srcDir, ctrdTmp);
  fs.mkdirSync(dest, { recursive: true });
  for (const name of plan.copy) fs.copyFileSync(path.join(srcDir, name), path.join(dest, name));
  for (const l of plan.link) fs.symlinkSync(l.target, path.join(dest, l.name));
  return plan;
}
