/**
 * The source's way back (agent/migration/recovery.ts) with a fake runtime and a fake process
 * table: a leftover dump is waited for before the container is judged, and a container Docker
 * still lists running after its task ended is looked at again. The real case runs on the bed
 * (test/integration/orphan-dump.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { restoreSource } from '../../agent/migration/recovery';
import type { JournalEntry } from '../../agent/migration/journal';
import { start } from '../../agent/migration/machine';
import { newMigrationRecord, type MigrationRecord } from '../../common/migration-record';
import { openEnv } from '../../common/db';
import { MigrationRunner } from '../../agent/migration/runner';
import { tempDir } from '../helpers/tmp';
import type { ProcInfo } from '../../agent/migration/orphan-dump';

const ID = 'c'.repeat(64);
const RUNC: ProcInfo = { pid: 50, ppid: 1, args: ['runc', 'checkpoint', '--image-path', '/x', ID] };

function entry(): JournalEntry {
  return {
    cmd: { migration_id: 'm1', herd_id: ID.slice(0, 12), target_node_id: 'n2', target_address: '10.0.0.2:7400', fs_mode: 'FS_MODE_DIFF', term: 1 },
    sourceDockerId: ID,
    state: start().state,
    record: newMigrationRecord({ migration_id: 'm1', herd_id: ID.slice(0, 12), source_node_id: 'n1', target_node_id: 'n2', fs_mode: 'FS_MODE_DIFF', step: 'CHECKPOINT', state: 'RUNNING', term: 1, version: 1 }),
    artifacts: [],
    checkpointDir: '/tmp/images/m1.cp',
  };
}

/** A runtime whose container is `states[i]` at the i-th inspect (the last one repeats), recording what was done. */
function runtime(states: string[]) {
  const done: string[] = [];
  let i = 0;
  return {
    done,
    rt: {
      inspect: async () => {
        const state = states[Math.min(i++, states.length - 1)];
        done.push(`inspect:${state}`);
        return { state, pid: 4242 } as never;
      },
      thaw: async () => (done.push('thaw'), 0),
      restoreFromDir: async (_id: string, dir: string) => (done.push(`restore:${dir}`), {} as never),
    } as never,
  };
}

describe('restoreSource after a restart of the source agent', () => {
  it('a dump still running is waited for; the container it then stopped is restored from that checkpoint', async () => {
    let polls = 0;
    const r = runtime(['exited']);
    const note = await restoreSource({ runtime: r.rt, orphan: { procs: () => (polls++ < 3 ? [RUNC] : []), sleep: async () => {}, alive: () => false } }, entry(), '/data/out/m1');
    expect(polls).toBe(4);
    expect(r.done).toEqual(['inspect:exited', 'restore:/tmp/images/m1.cp']);
    expect(note).toMatch(/^a checkpoint left running \(by a restart of this agent or a call that timed out\) ended \d+ ms later; the container was then stopped$/);
  });

  it('Docker still listing it running after its task ended is not believed: looked at again until it catches up', async () => {
    const r = runtime(['running', 'running', 'exited']);
    const note = await restoreSource({ runtime: r.rt, orphan: { procs: () => [], alive: () => false } }, entry(), '/data/out/m1');
    expect(r.done).toEqual(['inspect:running', 'inspect:running', 'inspect:exited', 'restore:/tmp/images/m1.cp']);
    expect(note).toBe('');
  });

  it('no dump, the container running (the dump failed and CRIU let it go): thawed where it stands, nothing to say', async () => {
    const r = runtime(['running']);
    expect(await restoreSource({ runtime: r.rt, orphan: { procs: () => [], alive: () => true } }, entry(), '/data/out/m1')).toBe('');
    expect(r.done).toEqual(['inspect:running', 'thaw']);
  });

  it('a dump past the bound is killed; the container, still running, is thawed', async () => {
    const killed: number[] = [];
    const r = runtime(['running']);
    const note = await restoreSource({ runtime: r.rt, faults: { orphanDumpWaitMs: 0 }, orphan: { procs: () => (killed.length ? [] : [RUNC]), kill: (p) => void killed.push(p), alive: () => true, thawCgroupOf: () => true } }, entry(), '/data/out/m1');
    expect(killed).toEqual([50]);
    expect(r.done).toEqual(['inspect:running', 'thaw']);
    expect(note).toMatch(/did not end within 0 ms and was killed \(its freeze undone\); the container was then running$/);
  });
});

describe('the final record survives a death between publishing it and journaling the end (real LMDB)', () => {
  it('an agent that could not publish the end leaves it unjournaled; the next one publishes it', async () => {
    const t = tempDir();
    const env = openEnv(t.dir);
    try {
      const e = entry();
      // what apply() journals before the finish action: the end decided, the record still RUNNING
      e.state = { ...e.state, phase: 'done', outcome: 'ROLLED_BACK', reasons: ['checkpoint failed: no space left on device'] };
      env.openDB<JournalEntry, string>({ name: 'migration.journal' }).putSync('m1', e);
      const deps = (publish: (r: MigrationRecord) => Promise<unknown>) => new MigrationRunner({
        nodeId: 'n1', address: () => '10.0.0.1:7400', env, dataDir: t.dir, findContainer: () => undefined, publish,
        runtime: {} as never, artifacts: { remove: () => {} } as never,
      });
      // the first agent dies while publishing the end (the sample log never got it)
      const died = deps(async (r) => { if (r.state !== 'RUNNING') throw new Error('killed -9'); });
      await died.recover();
      await new Promise((r) => setTimeout(r, 200));
      expect(env.openDB<JournalEntry, string>({ name: 'migration.journal' }).get('m1')!.record.state).toBe('RUNNING');
      // the next one finds the end unjournaled and publishes it
      const published: MigrationRecord[] = [];
      await deps(async (r) => void published.push(r)).recover();
      await new Promise((r) => setTimeout(r, 200));
      expect(published.map((r) => [r.state, r.reason])).toEqual([['ROLLED_BACK', 'checkpoint failed: no space left on device']]);
      expect(env.openDB<JournalEntry, string>({ name: 'migration.journal' }).get('m1')!.record.state).toBe('ROLLED_BACK');
    } finally {
      await env.close();
      t.cleanup();
    }
  });
});
