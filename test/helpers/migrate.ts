/** Helpers for migration tests on the bed: run Admin.Migrate and collect its records. */
import { adminClient } from './cluster';

export interface MigrateResult {
  records: any[];
  last: any;
  error?: { code: number; details: string };
}

export function migrate(coordinator: string, herdId: string, target: string, fsMode = 'FS_MODE_DIFF', timeoutMs = 120_000, tcpEstablished = false): Promise<MigrateResult> {
  const admin = adminClient(coordinator);
  return new Promise((resolve) => {
    const records: any[] = [];
    const s = admin.Migrate({ herd_id: herdId, target_node_id: target, fs_mode: fsMode, tcp_established: tcpEstablished }, { deadline: Date.now() + timeoutMs });
    s.on('data', (m: any) => records.push(m));
    s.on('error', (e: any) => {
      admin.close();
      resolve({ records, last: records[records.length - 1], error: { code: e.code, details: e.details } });
    });
    s.on('end', () => {
      admin.close();
      resolve({ records, last: records[records.length - 1] });
    });
  });
}
