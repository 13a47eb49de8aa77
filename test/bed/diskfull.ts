/**
 * A full disk on a bed node, for migration faults: the agent's image tmpfs (where the fast
 * path's checkpoint images are dumped on the source and fetched to on the target,
 * agent/runtime/fast-checkpoint.ts) shrunk with `mount -o remount,size=` to what it holds now
 * plus a few KiB, and given its size back when the fault heals. The same filesystem, so what
 * a migration wrote or failed to remove while it was full is still seen afterwards (a
 * filesystem mounted over it would hide those leftovers from the checker).
 */
import fs from 'node:fs';
import path from 'node:path';
import { imageRootFor } from '../../agent/runtime/fast-checkpoint';
import { run, type Bed } from './bed';

/** The image tmpfs of a node's agent (mounted under its containerd's tmp dir), or undefined before the agent mounted it. */
export function imageTmpfsOf(bed: Bed, id: string): string | undefined {
  const tag = path.basename(imageRootFor(bed.node(id).dockerSock, '/'));
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter(Boolean);
  return mounts.find((m) => path.basename(m) === tag);
}

/** What the image tmpfs of a node holds (checkpoints, staged restores, their tars and work dirs). */
export function imageTmpfsEntries(bed: Bed, id: string): string[] {
  const dir = imageTmpfsOf(bed, id);
  return dir ? fs.readdirSync(dir) : [];
}

/** How many bytes the tmpfs at dir uses and may hold. */
function usage(dir: string): { used: number; size: number } {
  const s = fs.statfsSync(dir);
  return { used: (s.blocks - s.bfree) * s.bsize, size: s.blocks * s.bsize };
}

async function resize(dir: string, bytes: number): Promise<void> {
  const r = await run('mount', ['-o', `remount,size=${bytes}`, dir]);
  if (r.code !== 0) throw new Error(`cannot resize the tmpfs at ${dir} to ${bytes} bytes: ${r.stderr.trim()}`);
}

/**
 * Fills a node's image tmpfs: it can take `leaveBytes` more. Resolves to the function that gives
 * it its size back. Fails loudly if the agent has no image tmpfs (no fast path: nothing to fill).
 */
export async function fillImageTmpfs(bed: Bed, id: string, leaveBytes = 16 << 10): Promise<() => Promise<void>> {
  const dir = imageTmpfsOf(bed, id);
  if (!dir) throw new Error(`${id} has no image tmpfs mounted (the agent's fast path is off or not probed yet): a full disk cannot be made there`);
  const { size } = usage(dir);
  // what it holds may grow between the look and the remount (a migration writing): asked again
  for (let tries = 0; ; tries++) {
    try {
      await resize(dir, usage(dir).used + leaveBytes);
      break;
    } catch (err) {
      if (tries >= 5) throw err;
    }
  }
  return () => resize(dir, size);
}

/**
 * Full disks that overlap (two migrations of one round may fill the same node): the first
 * fill of a node shrinks its tmpfs, the last heal gives the size back.
 */
export class FullDisks {
  private readonly held = new Map<string, { count: number; heal: Promise<() => Promise<void>> }>();

  constructor(private readonly bed: Bed) {}

  async fill(id: string): Promise<void> {
    const h = this.held.get(id);
    if (h) {
      h.count++;
      await h.heal;
      return;
    }
    const heal = fillImageTmpfs(this.bed, id);
    this.held.set(id, { count: 1, heal });
    await heal.catch((err) => {
      this.held.delete(id);
      throw err;
    });
  }

  async heal(id: string): Promise<void> {
    const h = this.held.get(id);
    if (!h) return;
    if (--h.count > 0) return;
    this.held.delete(id);
    await (await h.heal)();
  }
}
