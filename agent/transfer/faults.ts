/**
 * Fault injection for the Transfer server, so that tests (and later the migration
 * rollback tests, which run real herd processes) can break a transfer on purpose.
 * Off unless explicitly asked for: a `faults` option given to transferService(), or the
 * HERD_FAULTS environment variable, e.g.
 *
 *   HERD_FAULTS=transfer.cut_after_bytes=1048576,transfer.times=2
 *
 * Keys of other namespaces ("mesh.x=...") are left to their owners; an unknown
 * transfer.* key is an error, so a typo cannot silently disable a fault.
 */

export interface TransferFaults {
  /** End a stream with UNAVAILABLE once it has sent at least this many data bytes. */
  cutAfterBytes?: number;
  /** Flip one bit in the data of the chunk holding this artifact offset (its CRC stays that of the true data). */
  corruptAtOffset?: number;
  /** Leave out the chunk holding this artifact offset, so the receiver sees a gap (not the first chunk of a stream). */
  dropAtOffset?: number;
  /** Answer this many Fetch calls with UNAVAILABLE before sending anything. */
  refuseFetches?: number;
  /** How often each of the faults above fires over the service's life (default 1, so a retry succeeds); 0 = always. */
  times?: number;
  /** Only affect this artifact name (default: all). */
  artifact?: string;
}

const KEYS: Record<string, keyof TransferFaults> = {
  cut_after_bytes: 'cutAfterBytes',
  corrupt_at_offset: 'corruptAtOffset',
  drop_at_offset: 'dropAtOffset',
  refuse_fetches: 'refuseFetches',
  times: 'times',
  artifact: 'artifact',
};

/** Parses HERD_FAULTS; undefined when it holds no transfer.* fault. */
export function faultsFromEnv(spec: string | undefined): TransferFaults | undefined {
  if (!spec) return undefined;
  const faults: TransferFaults = {};
  let any = false;
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    if (!name.startsWith('transfer.')) continue;
    const key = KEYS[name.slice('transfer.'.length)];
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (!key) throw new Error(`HERD_FAULTS: unknown fault "${name}" (known: ${Object.keys(KEYS).map((k) => `transfer.${k}`).join(', ')})`);
    if (key === 'artifact') {
      faults.artifact = value;
    } else {
      const n = Number(value);
      if (value === '' || !Number.isSafeInteger(n) || n < 0) throw new Error(`HERD_FAULTS: ${name} needs a non-negative integer, got "${value}"`);
      faults[key] = n;
    }
    any = true;
  }
  return any ? faults : undefined;
}

type Kind = 'cut' | 'corrupt' | 'drop' | 'refuse';

/** Which fault fires on which chunk, counting firings across all streams. */
export class FaultPlan {
  private readonly fired: Record<Kind, number> = { cut: 0, corrupt: 0, drop: 0, refuse: 0 };

  constructor(readonly faults: TransferFaults) {}

  private fire(kind: Kind, artifact: string): boolean {
    if (this.faults.artifact !== undefined && this.faults.artifact !== artifact) return false;
    const limit = kind === 'refuse' ? (this.faults.refuseFetches ?? 0) : (this.faults.times ?? 1);
    if (limit !== 0 && this.fired[kind] >= limit) return false;
    this.fired[kind]++;
    return true;
  }

  refuse(artifact: string): boolean {
    return (this.faults.refuseFetches ?? 0) > 0 && this.fire('refuse', artifact);
  }

  /** `sent`: data bytes this stream has sent, including the chunk just written. */
  cut(artifact: string, sent: number): boolean {
    return this.faults.cutAfterBytes !== undefined && sent >= this.faults.cutAfterBytes && this.fire('cut', artifact);
  }

  corrupt(artifact: string, offset: number, length: number): boolean {
    return holds(this.faults.corruptAtOffset, offset, length) && this.fire('corrupt', artifact);
  }

  drop(artifact: string, offset: number, length: number): boolean {
    return holds(this.faults.dropAtOffset, offset, length) && this.fire('drop', artifact);
  }
}

const holds = (at: number | undefined, offset: number, length: number) => at !== undefined && at >= offset && at < offset + length;
