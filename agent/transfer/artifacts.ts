/**
 * The artifacts this node will serve over Transfer.Fetch, keyed by (migration id,
 * name). A request names an artifact, never a path: only files put here by the node's
 * own code can leave the node, so a name like "../../etc/shadow" cannot reach the disk.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { checkId } from '../../common/validate';
import { loadCrc32c } from './crc32c';

/**
 * Registration reads the whole file anyway (for its SHA-256), so it also keeps the
 * CRC32C of each block of this size: a server whose chunks are these blocks then sends
 * stored CRCs instead of computing them on every fetch (the source node, which just
 * checkpointed, is the busy one), and a file corrupted on disk after registration
 * fails the receiver's CRC check instead of being sent with a fresh CRC.
 */
export const CRC_BLOCK_BYTES = 512 * 1024;

export interface Artifact {
  migrationId: string;
  name: string;
  /** Absolute path of the file on this node; never sent to peers. */
  path: string;
  size: number;
  /** SHA-256 of the file, lowercase hex. */
  sha256: string;
  /** If set, only this node may fetch it: the migration's target, named by its mTLS certificate. */
  allowedNodeId?: string;
  /** mtime when registered: a file rewritten since is refused rather than served. */
  mtimeMs: number;
  /** CRC32C of each CRC_BLOCK_BYTES block (the last one may be short); absent if the SHA-256 was given. */
  blockCrcs?: Uint32Array;
}

export interface RegisterSpec {
  migrationId: string;
  name: string;
  path: string;
  allowedNodeId?: string;
  /**
   * SHA-256 computed by the producer while it wrote the file (saves reading it again).
   * Trusted as given: a wrong one makes every receiver reject the artifact.
   */
  sha256?: string;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Checks an artifact name; a message for people, or undefined when it is fine. */
export function checkArtifactName(value: unknown): string | undefined {
  const bad = checkId('artifact', value);
  if (bad) return bad;
  // checkId already refuses '/', '\' and a leading '.'; '..' anywhere looks like a
  // traversal attempt and has no legitimate use in a name.
  if ((value as string).includes('..')) return `artifact "${value as string}" is not valid: '..' is not allowed in a name`;
  return undefined;
}

/** Size, SHA-256 and block CRC32Cs of a file, read one block at a time. */
export async function hashFile(path: string): Promise<{ size: number; sha256: string; blockCrcs: Uint32Array }> {
  const crc32c = await loadCrc32c();
  const hash = createHash('sha256');
  const crcs: number[] = [];
  const block = Buffer.allocUnsafe(CRC_BLOCK_BYTES);
  const fh = await open(path, 'r');
  let size = 0;
  try {
    for (;;) {
      let n = 0;
      while (n < block.length) {
        const { bytesRead } = await fh.read(block, n, block.length - n, size + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      if (n === 0) break;
      const data = block.subarray(0, n);
      hash.update(data);
      crcs.push(crc32c(data));
      size += n;
      if (n < block.length) break;
    }
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest('hex'), blockCrcs: Uint32Array.from(crcs) };
}

export class ArtifactRegistry {
  private readonly byKey = new Map<string, Artifact>();

  /** Registers (or replaces) a file as servable; hashes it unless the SHA-256 is given. */
  async register(spec: RegisterSpec): Promise<Artifact> {
    const bad =
      checkId('migration id', spec.migrationId) ??
      checkArtifactName(spec.name) ??
      (spec.allowedNodeId !== undefined ? checkId('allowed node id', spec.allowedNodeId) : undefined) ??
      (spec.sha256 !== undefined && !SHA256_HEX.test(spec.sha256) ? 'sha256 must be 64 lowercase hex digits' : undefined) ??
      (isAbsolute(spec.path) ? undefined : `artifact path "${spec.path}" must be absolute`);
    if (bad) throw new Error(bad);
    const st = await stat(spec.path);
    if (!st.isFile()) throw new Error(`artifact path "${spec.path}" is not a regular file`);
    let sha256 = spec.sha256;
    let blockCrcs: Uint32Array | undefined;
    if (sha256 === undefined) {
      const h = await hashFile(spec.path);
      if (h.size !== st.size) throw new Error(`artifact "${spec.path}" changed while it was being hashed`);
      ({ sha256, blockCrcs } = h);
    }
    const artifact: Artifact = {
      migrationId: spec.migrationId,
      name: spec.name,
      path: spec.path,
      size: st.size,
      sha256,
      allowedNodeId: spec.allowedNodeId,
      mtimeMs: st.mtimeMs,
      blockCrcs,
    };
    this.byKey.set(key(spec.migrationId, spec.name), artifact);
    return artifact;
  }

  get(migrationId: string, name: string): Artifact | undefined {
    return this.byKey.get(key(migrationId, name));
  }

  /** Forgets one artifact, or all of a migration's when no name is given. Files stay on disk. */
  remove(migrationId: string, name?: string): number {
    if (name !== undefined) return this.byKey.delete(key(migrationId, name)) ? 1 : 0;
    let n = 0;
    for (const [k, a] of this.byKey) {
      if (a.migrationId === migrationId) {
        this.byKey.delete(k);
        n++;
      }
    }
    return n;
  }

  list(): Artifact[] {
    return [...this.byKey.values()];
  }
}

// NUL cannot occur in a valid id, so the key is unambiguous.
const key = (migrationId: string, name: string) => `${migrationId}\0${name}`;
