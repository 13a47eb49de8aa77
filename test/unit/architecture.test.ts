/**
 * The folders are the architecture: the two roles of a node meet only in common/ (and in
 * agent/node.ts, which composes them), and the pure cores (state machines, policies, the
 * trainer) reach no network, disk or container runtime, so they stay fast to test and the
 * simulator can run them as they are. This test reads every import so the rule holds
 * without anyone remembering it.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');

/** Folders and files whose code (and everything it imports from the project) must be pure. */
const PURE = [
  'agent/migration/machine.ts',
  'coordinator/election/election.ts',
  'coordinator/election/simcore.ts',
  'coordinator/control/',
  'coordinator/forecast/trainer/',
  'coordinator/sim/',
];

/** What a pure file may not reach: I/O, the runtime, native stores. */
const IMPURE = /^(node:)?(fs|fs\/promises|child_process|net|http2|dgram|worker_threads)$|^@grpc\/|^lmdb$|^dockerode$|^onnxruntime-node$|^systeminformation$/;

type Imports = Map<string, string[]>; // file (relative to ROOT) -> import specifiers

function sourceFiles(dir: string): string[] {
  const abs = path.join(ROOT, dir);
  if (!existsSync(abs)) return [];
  if (statSync(abs).isFile()) return [dir];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path.join(dir, e.name)] : []);
}

function readImports(files: string[]): Imports {
  const out: Imports = new Map();
  for (const f of files) {
    const info = ts.preProcessFile(readFileSync(path.join(ROOT, f), 'utf8'), true, true);
    out.set(f, info.importedFiles.map((i) => i.fileName));
  }
  return out;
}

/** A relative specifier as a project path ('agent/x.ts'); undefined for packages. */
function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.normalize(path.join(path.dirname(from), spec));
  for (const cand of [base, `${base}.ts`, path.join(base, 'index.ts')]) if (existsSync(path.join(ROOT, cand)) && statSync(path.join(ROOT, cand)).isFile()) return cand;
  return `${base}.ts`;
}

const under = (file: string, dir: string) => file === dir || file.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** Every import that crosses between the roles, as "from -> to" lines. */
function crossings(imports: Imports): string[] {
  const bad: string[] = [];
  for (const [from, specs] of imports) {
    for (const spec of specs) {
      const to = resolve(from, spec);
      if (!to) continue;
      if (under(from, 'coordinator') && under(to, 'agent')) bad.push(`${from} -> ${to}`);
      if (under(from, 'agent') && from !== 'agent/node.ts' && under(to, 'coordinator')) bad.push(`${from} -> ${to}`);
      if (under(from, 'common') && (under(to, 'agent') || under(to, 'coordinator'))) bad.push(`${from} -> ${to}`);
    }
  }
  return bad;
}

/** Every way a pure file reaches I/O, directly or through the project files it imports. */
function impurities(imports: Imports, pure: string[], read: (files: string[]) => Imports): string[] {
  const bad: string[] = [];
  const all = new Map(imports);
  const visit = (file: string, chain: string[], seen: Set<string>) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!all.has(file)) for (const [k, v] of read([file])) all.set(k, v);
    for (const spec of all.get(file) ?? []) {
      const to = resolve(file, spec);
      if (to) visit(to, [...chain, to], seen);
      else if (IMPURE.test(spec)) bad.push(`${[...chain].join(' -> ')} imports ${spec}`);
    }
  };
  for (const file of pure) visit(file, [file], new Set());
  return bad;
}

const project = () => readImports(['agent', 'coordinator', 'common', 'cli'].flatMap(sourceFiles));

describe('architecture', () => {
  it('the roles meet only in common/ (and in agent/node.ts, which composes them)', () => {
    const imports = project();
    expect(imports.size).toBeGreaterThan(50);
    expect(crossings(imports)).toEqual([]);
  });

  it('pure cores reach no network, disk, store or runtime, even through what they import', () => {
    const pureFiles = PURE.flatMap(sourceFiles);
    expect(pureFiles).toContain('agent/migration/machine.ts');
    expect(impurities(project(), pureFiles, readImports)).toEqual([]);
  });

  it('the checks catch a crossing and an impurity reached through another file', () => {
    const fake: Imports = new Map([
      ['agent/uplink.ts', ['../coordinator/migrations']],
      ['agent/node.ts', ['../coordinator/migrations']],
      ['coordinator/ingest.ts', ['../agent/samplelog', '../common/samples']],
      ['common/x.ts', ['../agent/y']],
      ['coordinator/control/policy.ts', ['./helper', 'zod']],
      ['coordinator/control/helper.ts', ['node:fs']],
    ]);
    expect(crossings(fake)).toEqual([
      'agent/uplink.ts -> coordinator/migrations.ts',
      'coordinator/ingest.ts -> agent/samplelog.ts',
      'common/x.ts -> agent/y.ts',
    ]);
    expect(impurities(fake, ['coordinator/control/policy.ts'], () => new Map())).toEqual([
      'coordinator/control/policy.ts -> coordinator/control/helper.ts imports node:fs',
    ]);
  });
});
