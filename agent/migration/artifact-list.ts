/**
 * CompleteMigration's artifact list, as the target takes it from a peer: which names it knows
 * what to do with, each once, with a size and a digest that are well formed.
 */
import { IMAGE_ARTIFACT } from '../runtime/fast-checkpoint';
import { SHA256_HEX } from '../transfer/artifacts';
import { invalid, truncate } from '../../common/validate';

/** The artifacts a target knows what to do with; a request naming any other is refused. */
export const TARGET_ARTIFACTS = ['checkpoint.tar', 'fs.tar', 'log.json'] as const;
/** Besides those, CRIU's big images, each as it is: `image.<file>` (IMAGE_ARTIFACT), at most this many. */
export const MAX_IMAGE_ARTIFACTS = 1024;

export interface ArtifactSpec { name: string; size: number; sha256: string }

/** CompleteMigration's artifact list: known names, each once, checkpoint.tar among them, sizes and digests well formed. */
export function checkArtifacts(raw: unknown): ArtifactSpec[] {
  if (!Array.isArray(raw) || raw.length === 0) throw invalid('artifacts is required: at least checkpoint.tar');
  const most = TARGET_ARTIFACTS.length + MAX_IMAGE_ARTIFACTS;
  if (raw.length > most) throw invalid(`artifacts lists ${raw.length} artifacts; at most ${most} (${TARGET_ARTIFACTS.join(', ')} and ${MAX_IMAGE_ARTIFACTS} image.<file>)`);
  const seen = new Set<string>();
  const out: ArtifactSpec[] = [];
  for (const a of raw as Array<{ name?: unknown; size?: unknown; sha256?: unknown }>) {
    const name = a?.name;
    const image = typeof name === 'string' && IMAGE_ARTIFACT.test(name) && !name.includes('..');
    if (typeof name !== 'string' || (!(TARGET_ARTIFACTS as readonly string[]).includes(name) && !image)) {
      throw invalid(`artifact ${JSON.stringify(truncate(String(name)))} is not one this node can apply: expected ${TARGET_ARTIFACTS.join(', ')} or image.<CRIU image file>`);
    }
    if (seen.has(name)) throw invalid(`artifact ${name} is listed twice`);
    seen.add(name);
    const size = Number(a.size);
    if (!Number.isSafeInteger(size) || size < 0) throw invalid(`artifact ${name}: size ${JSON.stringify(truncate(String(a.size)))} is not a byte count`);
    if (typeof a.sha256 !== 'string' || !SHA256_HEX.test(a.sha256)) throw invalid(`artifact ${name}: sha256 must be 64 lowercase hex digits`);
    out.push({ name, size, sha256: a.sha256 });
  }
  if (!seen.has('checkpoint.tar')) throw invalid('artifacts must include checkpoint.tar');
  return out;
}
