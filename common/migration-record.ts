/**
 * A migration's record as both roles hold it: the source agent journals and reports it in its
 * sample batches, the coordinator keeps the newest version of each (coordinator/migrations.ts).
 */

export interface MigrationRecord {
  migration_id: string;
  herd_id: string;
  source_node_id: string;
  target_node_id: string;
  fs_mode: string;
  step: string;
  state: string;
  bytes_done: number;
  bytes_total: number;
  timings: Array<{ step: string; ms: number }>;
  reason: string;
  started_ms: number;
  ended_ms: number;
  downtime_ms: number;
  target_docker_id: string;
  term: number;
  version: number;
  /** 'containerd' (the fast path) or 'docker' (the fallback); '' before the checkpoint */
  checkpoint_method: string;
  /** why the fast path was not used; '' when it was */
  checkpoint_fallback_reason: string;
  /** 'linked' or 'placed'; '' until the target restored */
  restore_method: string;
  tcp_established: boolean;
  /** which way the pages went and why ("page server: 212 MB in use >= 64 MB"); '' when the page server is off */
  page_path?: string;
}

/** A new record: the identifying fields given, every counter at zero. */
export function newMigrationRecord(f: Pick<MigrationRecord, 'migration_id' | 'herd_id' | 'source_node_id' | 'target_node_id' | 'fs_mode' | 'step' | 'state' | 'term' | 'version'> & { tcp_established?: boolean }): MigrationRecord {
  return {
    bytes_done: 0, bytes_total: 0, timings: [], reason: '', started_ms: Date.now(), ended_ms: 0, downtime_ms: 0, target_docker_id: '',
    checkpoint_method: '', checkpoint_fallback_reason: '', restore_method: '', tcp_established: false, page_path: '', ...f,
  };
}

export interface NodeVisit {
  node_id: string;
  docker_id: string;
  since_ms: number;
  until_ms: number;
  migration_id: string;
}

export const FINAL_STATES = new Set(['SUCCEEDED', 'ROLLED_BACK', 'FAILED']);
