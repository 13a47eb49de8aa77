/**
 * Fault injection for migration tests with real processes: HERD_FAULTS (the same variable
 * the transfer service reads its `transfer.*` faults from), e.g.
 *   HERD_FAULTS=migration.fail_restore          the target's restore fails (once per process)
 *   HERD_FAULTS=migration.fail_source_restore   the source's rollback restore fails
 *   HERD_FAULTS=migration.pause_before_complete_ms=3000   the source waits before the transfer
 *   HERD_FAULTS=migration.pause_after_restore_ms=3000     the target waits between its restore and
 *                                                          recording and answering it (a window to kill it in)
 *   HERD_FAULTS=migration.orphan_dump_wait_ms=0   how long a rollback waits for a checkpoint left running by
 *                                                  a restart of the agent before killing it (default 60000)
 * Off unless set. An unknown migration.* key is an error, so a typo cannot hide a fault.
 */
export interface MigrationFaults {
  failRestore?: boolean;
  failSourceRestore?: boolean;
  pauseBeforeCompleteMs?: number;
  pauseAfterRestoreMs?: number;
  orphanDumpWaitMs?: number;
}

export function migrationFaultsFromEnv(spec: string | undefined): MigrationFaults {
  const f: MigrationFaults = {};
  for (const item of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value = ''] = item.split('=', 2);
    if (!name.startsWith('migration.')) continue;
    switch (name.slice('migration.'.length)) {
      case 'fail_restore':
        f.failRestore = true;
        break;
      case 'fail_source_restore':
        f.failSourceRestore = true;
        break;
      case 'pause_before_complete_ms':
        f.pauseBeforeCompleteMs = milliseconds(name, value);
        break;
      case 'pause_after_restore_ms':
        f.pauseAfterRestoreMs = milliseconds(name, value);
        break;
      case 'orphan_dump_wait_ms':
        f.orphanDumpWaitMs = milliseconds(name, value);
        break;
      default:
        throw new Error(`HERD_FAULTS: unknown fault "${name}" (known: migration.fail_restore, migration.fail_source_restore, migration.pause_before_complete_ms, migration.pause_after_restore_ms, migration.orphan_dump_wait_ms)`);
    }
  }
  return f;
}

function milliseconds(name: string, value: string): number {
  const ms = Number(value);
  if (value === '' || !Number.isSafeInteger(ms) || ms < 0) throw new Error(`HERD_FAULTS: ${name} needs a non-negative integer, got "${value}"`);
  return ms;
}
