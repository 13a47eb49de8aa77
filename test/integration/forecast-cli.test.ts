// `herd model train|predict` as a user types them: the real program (dist/herd.cjs), its
// worker thread, onnx-proto and onnxruntime; bad input refused with the line/column/flag.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HERD, runCmd } from '../helpers/herd';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herd-model-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};
const herd = (...args: string[]) => runCmd(process.execPath, [HERD, ...args], 60_000);
/** A command line as README.md shows it, run in the test's directory. */
const typed = (line: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [HERD, ...line.replace(/^herd /, '').split(' ')], { cwd: dir, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })));

// ops/s of a container: grows with its CPU share, shrinks with its host's load; mem missing at times
function csv(rows: number): string {
  const lines = ['time,cpu,mem,host_load,ops'];
  for (let i = 0; i < rows; i++) {
    const cpu = (i * 37) % 100;
    const load = ((i * 11) % 40) / 10;
    const mem = (i * 53) % 512;
    lines.push(`${i},${cpu},${i % 20 === 0 ? '' : mem},${load},${((50 * cpu) / (1 + load) + (i % 7)).toFixed(2)}`);
  }
  return lines.join('\n') + '\n';
}

describe('herd model train / predict', () => {
  const data = write('data.csv', csv(2000));
  const model = path.join(dir, 'model.onnx');

  it('trains from a CSV, writes an ONNX model, and predicts with it (README commands verbatim)', async () => {
    const t = await typed('herd model train --csv data.csv --target ops --time time --out model.onnx');
    expect(t.stderr).toBe('');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/trained on 1600 rows \(3 features\), validated on 400 later rows/);
    expect(t.stdout).toMatch(/onnxruntime agrees with the trainer to \d/);
    expect(t.stdout).toMatch(/cpu\s+\d/);
    const p = await typed('herd model predict --model model.onnx --csv data.csv');
    expect(p.code).toBe(0);
    const lines = p.stdout.trim().split('\n');
    expect(lines[0]).toBe('time,cpu,mem,host_load,ops,prediction');
    expect(lines.length).toBe(2001);
    let se = 0;
    for (const l of lines.slice(1)) {
      const c = l.split(',').map(Number);
      se += (c[5] - c[4]) ** 2;
    }
    expect(Math.sqrt(se / 2000)).toBeLessThan(40); // ops span 0..4950
  });

  it('refuses a CSV without the target, with a non-numeric cell, a constant or empty column, one row', async () => {
    const cases: [string, string, RegExp][] = [
      ['a,b\n1,2\n3,4\n', 'ops', /has no column "ops"; its columns are: a, b/],
      ['a,ops\n1,2\n3,x4\n', 'ops', /line 3, column "ops": "x4" is not a number/],
      ['a,b,ops\n1,5,2\n3,5,4\n', 'ops', /column "b" is constant \(5 in every row with a value\)/],
      ['a,b,ops\n1,,2\n3,,4\n', 'ops', /column "b" is empty/],
      ['a,ops\n1,2\n', 'ops', /has 1 row of data: training needs at least 2/],
      ['a,ops\n1,2\n3\n', 'ops', /Invalid Record Length.*line 3/i],
    ];
    for (const [text, target, error] of cases) {
      const r = await herd('model', 'train', '--csv', write('bad.csv', text), '--target', target, '--out', path.join(dir, 'never.onnx'));
      expect(r.stderr, text).toMatch(error);
      expect(r.code).toBe(2);
    }
    expect(fs.existsSync(path.join(dir, 'never.onnx'))).toBe(false);
  });

  it('refuses hyperparameters out of range, naming the flag', async () => {
    const r = await herd('model', 'train', '--csv', data, '--target', 'ops', '--max-depth', '0');
    expect(r.stderr).toMatch(/--max-depth: hyperparameter maxDepth = "0" is out of range: the depth of each tree must be an integer >= 1/);
    expect(r.code).toBe(2);
    const e = await herd('model', 'train', '--csv', data, '--target', 'ops', '--eta', 'fast');
    expect(e.stderr).toMatch(/--eta: hyperparameter eta = "fast" is out of range/);
  });

  it('refuses a model that is not ONNX, or reads a column the CSV lacks', async () => {
    const notOnnx = await herd('model', 'predict', '--model', data, '--csv', data);
    expect(notOnnx.stderr).toMatch(/data.csv is not an ONNX model/);
    expect(notOnnx.code).toBe(2);
    const lacking = await herd('model', 'predict', '--model', model, '--csv', write('less.csv', 'time,cpu,host_load\n1,2,3\n'));
    expect(lacking.stderr).toMatch(/reads feature "mem", which the dataset lacks \(its columns: time, cpu, host_load\)/);
    expect(lacking.code).toBe(2);
    const missing = await herd('model', 'predict', '--model', path.join(dir, 'nope.onnx'), '--csv', data);
    expect(missing.stderr).toMatch(/cannot read the model .*nope.onnx: ENOENT/);
  });
});
