/**
 * Says when a migration step failed because a disk is full. The error itself rarely does:
 * CRIU's dump log is cut off where its file system filled (the last line it wrote is then
 * unrelated), tar and streams say ENOSPC without a path. So after a failure the directories
 * the step wrote to are looked at, before what was written is removed (which frees the space).
 */
import { statfsFreeBytes } from '../../common/storage';

/** Less free than this on a file system a failed step wrote to: it ran out of space. */
export const FULL_BELOW_BYTES = 1 << 20;

/**
 * "no space left on device: <dir> has 12 KiB free" for the first dir whose file system is
 * (nearly) full, else undefined. A dir that cannot be looked at is passed over.
 */
export function fullDisk(dirs: Array<string | undefined>, freeBytes: (dir: string) => number = statfsFreeBytes): string | undefined {
  for (const dir of dirs) {
    if (!dir) continue;
    let free: number;
    try {
      free = freeBytes(dir);
    } catch {
      continue;
    }
    if (free < FULL_BELOW_BYTES) return `no space left on device: the file system of ${dir} has ${Math.floor(free / 1024)} KiB free`;
  }
  return undefined;
}
