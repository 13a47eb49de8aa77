// Engine API helpers: one CRIU operation at a time per engine, and Docker failures as RuntimeErrors.
import { describe, expect, it } from 'vitest';
import { checkName, dockerMessage, serialized, toRuntimeError } from '../../agent/runtime/engine';
import { RuntimeError } from '../../agent/runtime/runtime';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('serialized (invariant 5)', () => {
  it('runs one operation at a time per key, in order, and keeps going after a failure', async () => {
    const log: string[] = [];
    const op = (name: string, ms: number, fail = false) => async () => {
      log.push(`${name}+`);
      await sleep(ms);
      log.push(`${name}-`);
      if (fail) throw new Error(name);
      return name;
    };
    const a = serialized('sock-a', op('a1', 30));
    const b = serialized('sock-a', op('a2', 5, true));
    const c = serialized('sock-a', op('a3', 5));
    const other = serialized('sock-b', op('b1', 5)); // another engine does not wait
    await expect(a).resolves.toBe('a1');
    await expect(b).rejects.toThrow('a2');
    await expect(c).resolves.toBe('a3');
    await other;
    expect(log.filter((l) => l.startsWith('a'))).toEqual(['a1+', 'a1-', 'a2+', 'a2-', 'a3+', 'a3-']);
    expect(log.indexOf('b1-')).toBeLessThan(log.indexOf('a1-'));
  });
});

describe('Docker errors', () => {
  const http = (statusCode: number, message: string) =>
    Object.assign(new Error(`(HTTP code ${statusCode}) unexpected - ${message} `), { statusCode, json: { message } });

  it('keeps Docker\'s own message and maps the status to a gRPC-minded code', () => {
    expect(dockerMessage(http(404, 'No such container: x'))).toBe('No such container: x');
    expect(toRuntimeError(http(404, 'No such image: a:b'), 'create c')).toMatchObject({ code: 'NOT_FOUND', message: 'create c: No such image: a:b', detail: 'No such image: a:b' });
    expect(toRuntimeError(http(409, 'Conflict. The container name "/c" is already in use'), 'create c', { 409: 'ALREADY_EXISTS' }).code).toBe('ALREADY_EXISTS');
    expect(toRuntimeError(http(500, 'boom'), 'x').code).toBe('INTERNAL');
    expect(toRuntimeError(http(400, 'bad'), 'x').code).toBe('INVALID_ARGUMENT');
  });

  it('says Docker is unreachable or slow, not "undefined"', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED /run/docker.sock'), { code: 'ECONNREFUSED' });
    expect(toRuntimeError(refused, 'inspect c')).toMatchObject({ code: 'UNAVAILABLE', message: 'inspect c: Docker is unreachable (ECONNREFUSED)' });
    const slow = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
    expect(toRuntimeError(slow, 'checkpoint c').message).toBe('checkpoint c: Docker did not answer in time');
    const mine = new RuntimeError('already typed', 'NOT_FOUND');
    expect(toRuntimeError(mine, 'x')).toBe(mine);
  });

  it('checks names as Docker does', () => {
    expect(() => checkName('m-42.ok_1', 'checkpoint name')).not.toThrow();
    for (const bad of ['x', '-lead', 'a/b', '../up', '']) expect(() => checkName(bad, 'checkpoint name')).toThrow(RuntimeError);
  });
});
