/**
 * Row sets (XGBoost's src/common/row_set.h and partitioner): a node's rows are one
 * contiguous segment of a shared index array; splitting a node reorders its segment so
 * the left child's rows come first, each side keeping its order (determinism; rows stay
 * ascending, which keeps reads of the slot matrix moving forward).
 */
import type { SlotMatrix } from './cuts';

/** How one node is split, in the slot matrix's terms. */
export interface SlotSplit {
  feature: number;
  /** A row goes left when its slot is <= lastLeftSlot ... */
  lastLeftSlot: number;
  /** ... or is this (missing) slot and defaultLeft is set. */
  missingSlot: number;
  defaultLeft: boolean;
}

export const goesLeft = (s: number, sp: SlotSplit): boolean => (s === sp.missingSlot ? sp.defaultLeft : s <= sp.lastLeftSlot);

/**
 * Splits rows[begin..end) and returns where the right rows start. When hist is given, the
 * gradient histogram of the side `histLeft` names is summed in the same pass, while each
 * row's slots are in cache (XGBoost builds it in a second pass; one pass is ~2x faster
 * here). scratch must hold end - begin entries.
 */
export function partitionRows(
  rows: Uint32Array,
  begin: number,
  end: number,
  slots: SlotMatrix,
  features: number,
  sp: SlotSplit,
  scratch: Uint32Array,
  hist?: { out: Float64Array; left: boolean; grad: Float32Array },
): number {
  let l = begin;
  let rcount = 0;
  const { feature, lastLeftSlot, missingSlot, defaultLeft } = sp;
  const out = hist?.out;
  const grad = hist?.grad;
  const histLeft = hist?.left ?? false;
  for (let i = begin; i < end; i++) {
    const r = rows[i];
    const p = r * features;
    const s = slots[p + feature];
    const left = s === missingSlot ? defaultLeft : s <= lastLeftSlot;
    if (left) rows[l++] = r;
    else scratch[rcount++] = r;
    if (out && left === histLeft) {
      const g = grad![r];
      for (let f = 0; f < features; f++) {
        const k = slots[p + f] << 1;
        out[k] += g;
        out[k + 1] += 1;
      }
    }
  }
  rows.set(scratch.subarray(0, rcount), l);
  return l;
}
