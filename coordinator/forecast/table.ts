/**
 * Training tables from CSV text (a dataset a user exported or brought): a header line of
 * column names, then one row per line of numbers; an empty cell, NaN or NA is a missing
 * value. Every refusal names the line and column to fix. Pure: the caller reads the file.
 */
import { parse } from 'csv-parse/sync';

export class TableError extends Error {}

/** Numeric columns, each a float64 array over the rows (NaN = missing). */
export interface Table {
  columns: string[];
  values: Float64Array[];
  rows: number;
  /** The file line each row came from (for errors). */
  lines: Uint32Array;
  /**
   * Columns with a cell that is not a number (ids, names): their raw cells, and the first
   * such cell. Reading one as numbers (column(), matrixOf()) is refused naming that cell,
   * so a dataset's id columns may stay in the file beside the features.
   */
  text?: Map<number, { cells: string[]; line: number; cell: string }>;
}

const MISSING = new Set(['', 'nan', 'na', 'null']);

export function parseCsv(text: string, source = 'the CSV'): Table {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { info: true, skip_empty_lines: true, trim: true, relax_column_count: false }) as unknown as typeof records;
  } catch (e) {
    throw new TableError(`${source}: ${(e as Error).message}`);
  }
  if (records.length === 0) throw new TableError(`${source} is empty: it needs a header line of column names, then rows of numbers`);
  const columns = records[0].record;
  const seen = new Set<string>();
  columns.forEach((c, i) => {
    if (c === '') throw new TableError(`${source}, line ${records[0].info.lines}: column ${i + 1} has no name in the header`);
    if (seen.has(c)) throw new TableError(`${source}, line ${records[0].info.lines}: column "${c}" appears twice in the header`);
    seen.add(c);
  });
  const rows = records.length - 1;
  const values = columns.map(() => new Float64Array(rows));
  const lines = new Uint32Array(rows);
  const textColumns = new Map<number, { cells: string[]; line: number; cell: string }>();
  for (let r = 0; r < rows; r++) {
    const { record, info } = records[r + 1];
    lines[r] = info.lines;
    for (let c = 0; c < columns.length; c++) {
      const cell = record[c];
      if (MISSING.has(cell.toLowerCase())) {
        values[c][r] = NaN;
        continue;
      }
      const v = Number(cell);
      values[c][r] = v;
      if (Number.isFinite(v)) continue;
      values[c][r] = NaN;
      if (!textColumns.has(c)) textColumns.set(c, { cells: records.slice(1).map((x) => x.record[c]), line: info.lines, cell });
    }
  }
  return { columns, values, rows, lines, ...(textColumns.size ? { text: textColumns } : {}) };
}

export const column = (t: Table, name: string, source = 'the CSV'): Float64Array => {
  const i = t.columns.indexOf(name);
  if (i < 0) throw new TableError(`${source} has no column "${name}"; its columns are: ${t.columns.join(', ')}`);
  const bad = t.text?.get(i);
  if (bad) throw new TableError(`${source}, line ${bad.line}, column "${name}": "${bad.cell}" is not a number (leave the cell empty for a missing value)`);
  return t.values[i];
};

/** The table's columns as written: numbers, or the raw cells of a column of text. */
export const columnsAsRead = (t: Table): (Float64Array | string[])[] => t.values.map((v, i) => t.text?.get(i)?.cells ?? v);

/** Row-major float32 matrix of the named columns, in that order. */
export function matrixOf(t: Table, names: string[], source = 'the CSV'): Float32Array {
  const cols = names.map((n) => column(t, n, source));
  const out = new Float32Array(t.rows * names.length);
  for (let c = 0; c < cols.length; c++) for (let r = 0; r < t.rows; r++) out[r * names.length + c] = cols[c][r];
  return out;
}

/** A column's first value (NaN: it has none) and whether another value differs from it. */
function spread(v: Float64Array): { first: number; varies: boolean } {
  let first = NaN;
  for (let r = 0; r < v.length; r++) {
    if (Number.isNaN(v[r])) continue;
    if (Number.isNaN(first)) first = v[r];
    else if (v[r] !== first) return { first, varies: true };
  }
  return { first, varies: false };
}

/** Of `names`, the columns with at least two distinct values (a split can use them), and the others. */
export function informative(t: Table, names: readonly string[]): { kept: string[]; dropped: string[] } {
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const name of names) (spread(column(t, name)).varies ? kept : dropped).push(name);
  return { kept, dropped };
}

/** Refuses a table a model cannot be trained on: too few rows, a column with no values or only one. */
export function checkTrainable(t: Table, target: string, features: string[], source = 'the CSV'): void {
  const y = column(t, target, source);
  if (t.rows < 2) throw new TableError(`${source} has ${t.rows} row${t.rows === 1 ? '' : 's'} of data: training needs at least 2 (and a useful model many more)`);
  for (let r = 0; r < t.rows; r++) {
    if (Number.isNaN(y[r])) throw new TableError(`${source}, line ${t.lines[r]}, column "${target}": the target is missing; every row needs a value to learn from`);
  }
  if (features.length === 0) throw new TableError(`${source} has no feature column besides the target "${target}"`);
  for (const name of features) {
    const { first, varies } = spread(column(t, name, source));
    if (Number.isNaN(first)) throw new TableError(`${source}, column "${name}" is empty (no row has a value): drop it or choose the features with --features`);
    if (!varies) throw new TableError(`${source}, column "${name}" is constant (${first} in every row with a value): it cannot inform a split; drop it or choose the features with --features`);
  }
}

/** CSV text of named columns (for `herd model predict`'s output); a column of text is written as it was read. */
export function toCsv(names: string[], cols: (ArrayLike<number> | readonly string[])[]): string {
  const rows = cols.length ? cols[0].length : 0;
  const out = [names.join(',')];
  const cell = (v: number | string) => (typeof v === 'string' ? (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v) : Number.isNaN(v) ? '' : String(v));
  for (let r = 0; r < rows; r++) out.push(cols.map((c) => cell(c[r])).join(','));
  return out.join('\n') + '\n';
}
