/**
 * A coordinator that steps down ends its Migrate streams with where to ask instead, and a new
 * coordinator asks the source agent about records an earlier one left open (PENDING, RUNNING);
 * the agent answers from its journal, or records a command that never reached it as never
 * started (and ignores the command if it arrives after all). Real LMDB; no runtime is touched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openEnv, type Env } from '../../common/db';
import { newMigrationRecord, type MigrationRecord } from '../../common/migration-record';
import { MigrateStreams, steppedDownText, unsettled } from '../../coordinator/migrate';
import { MigrationRunner } from '../../agent/migration/runner';
import { tempDir } from '../helpers/tmp';

const rec = (id: string, f: Partial<MigrationRecord>): MigrationRecord => ({
  ...newMigrationRecord({ migration_id: id, herd_id: 'h1', source_node_id: 'n1', target_node_id: 'n2', fs_mode: 'FS_MODE_DIFF', step: 'PREPARE', state: 'PENDING', term: 1, version: 0 }),
  ...f,
});

describe('unsettled: what a coordinator asks a connecting source about', () => {
  const records = [
    rec('a', { state: 'PENDING', term: 1 }),
    rec('b', { state: 'RUNNING', term: 2 }),
    rec('c', { state: 'SUCCEEDED', term: 1 }),
    rec('d', { state: 'ROLLED_BACK', term: 1 }),
    rec('e', { state: 'FAILED', term: 1 }),
    rec('f', { state: 'PENDING', term: 3 }), // this coordinator's own: it redelivers the command
    rec('g', { state: 'PENDING', term: 1, source_node_id: 'n9' }), // another source
  ];

  it('the open records of that source from earlier terms, and only those', () => {
    expect(unsettled(records, 'n1', 3).map((m) => m.migration_id)).toEqual(['a', 'b']);
    expect(unsettled(records, 'n9', 3).map((m) => m.migration_id)).toEqual(['g']);
    expect(unsettled(records, 'n1', 1)).toEqual([]);
    expect(unsettled([], 'n1', 5)).toEqual([]);
  });
});

describe('MigrateStreams: a step-down ends every open Migrate stream', () => {
  it('each end hears who leads now; a stream that ended by itself is not ended again', () => {
    const s = new MigrateStreams();
    const heard: Array<string | undefined> = [];
    s.add((l) => heard.push(l?.id));
    const remove = s.add(() => heard.push('removed one'));
    remove();
    expect(s.size).toBe(1);
    s.stepDown({ id: 'n3', address: '10.0.0.3:7400' });
    expect(heard).toEqual(['n3']);
    expect(s.size).toBe(0);
    s.stepDown();
    expect(heard).toEqual(['n3']);
  });

  it('the sentence says what happened, that the migration goes on, and the command to ask the new coordinator', () => {
    expect(steppedDownText({ id: 'n3', address: '10.0.0.3:7400' }, 'abc123', 'm-1')).toBe(
      'coordinator stepped down (n3 at 10.0.0.3:7400 coordinates now); the migration m-1 continues between the agents, ask the new coordinator: herd migrations abc123 -s 10.0.0.3:7400',
    );
    // no new coordinator yet: another node to ask (it names the coordinator once there is one)
    expect(steppedDownText({ askAt: '10.0.0.2:7400' }, 'abc123', 'm-1')).toMatch(/\(a new one is being elected\); .*herd migrations abc123 -s 10\.0\.0\.2:7400$/);
    expect(steppedDownText(undefined, 'abc123', 'm-1')).toMatch(/^coordinator stepped down \(a new one is being elected\); the migration m-1 continues between the agents, ask the new coordinator: herd migrations abc123$/);
  });
});

describe('MigrationRunner.settle: the source agent answers about a migration', () => {
  let env: Env | undefined;
  let cleanup = () => {};
  afterEach(async () => {
    await env?.close();
    cleanup();
  });

  function runner(published: MigrationRecord[], running?: string) {
    const t = tempDir();
    cleanup = t.cleanup;
    env = openEnv(t.dir);
    return new MigrationRunner({
      nodeId: 'n1',
      address: () => '10.0.0.1:7400',
      env,
      runtime: {} as never, // settle touches no container
      artifacts: {} as never,
      dataDir: t.dir,
      findContainer: (herdId) => (herdId === running ? { dockerId: 'd'.repeat(64), name: 'c' } : undefined),
      publish: async (r) => void published.push(r),
    });
  }

  it('a command that never arrived: recorded ROLLED_BACK as never started, and the command is ignored if it comes after all', async () => {
    const published: MigrationRecord[] = [];
    const r = runner(published, 'h1');
    await r.settle({ migration_id: 'm-1', herd_id: 'h1', target_node_id: 'n2', state: 'PENDING' }, 4);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ migration_id: 'm-1', herd_id: 'h1', source_node_id: 'n1', target_node_id: 'n2', state: 'ROLLED_BACK', step: 'ROLLBACK', term: 4 });
    expect(published[0].version).toBeGreaterThan(0); // newer than the coordinator's PENDING (version 0)
    expect(published[0].reason).toMatch(/^never started: the command did not reach n1 before the coordinator that sent it stepped down or died \(asked in term 4\)/);
    // the late command: ignored, nothing started (the runtime would be touched: it is an empty object)
    await r.start({ migration_id: 'm-1', herd_id: 'h1', target_node_id: 'n2', target_address: '10.0.0.2:7400' }, 3);
    expect(published).toHaveLength(1);
    // asked again: answers with the same record, a newer version
    await r.settle({ migration_id: 'm-1', herd_id: 'h1', target_node_id: 'n2', state: 'PENDING' }, 5);
    expect(published).toHaveLength(2);
    expect(published[1]).toMatchObject({ state: 'ROLLED_BACK', reason: published[0].reason });
    expect(published[1].version).toBeGreaterThan(published[0].version);
  });

  it('a malformed question is ignored', async () => {
    const published: MigrationRecord[] = [];
    const r = runner(published);
    await r.settle({ migration_id: '../x', herd_id: 'h1', target_node_id: 'n2' }, 4);
    await r.settle(undefined, 4);
    expect(published).toEqual([]);
  });
});
