/**
 * The target's side of pages straight to the target (docs/migration.md#pages-straight-to-the-target):
 * a CRIU page server for one migration, started at PrepareMigration, or why there is none.
 */
import { rm } from 'node:fs/promises';
import { logger } from '../../common/log';
import type { Transport } from '../../common/transport';
import type { ContainerRuntime } from '../runtime/runtime';
import { nodeTlsFiles, startPageServer } from '../runtime/page-server';
import { errorText } from './errors';

const log = logger('migration-target');

/**
 * A CRIU page server writing into this migration's staging dir on the image tmpfs, over mutual
 * TLS with this node's certificate; or why not (the source then sends the pages as artifacts).
 */
export async function startTargetPageServer(deps: { nodeId: string; dataDir: string; runtime: ContainerRuntime; transport?: Transport }, migrationId: string): Promise<{ pid: number; port: number } | { refusal: string }> {
  const tls = deps.transport?.secure ? nodeTlsFiles(deps.dataDir) : undefined;
  if (!tls) return { refusal: `${deps.nodeId} runs without TLS, and CRIU's page server verifies the pages only under TLS` };
  const staging = await deps.runtime.stagingDir(migrationId).catch(() => undefined);
  if (!staging) return { refusal: `${deps.nodeId} has no image tmpfs (it restores the old way)` };
  try {
    await rm(staging, { recursive: true, force: true });
    return await startPageServer(staging, tls);
  } catch (err) {
    log.warn('could not start a page server; the pages come as artifacts', { migration: migrationId, reason: errorText(err) });
    return { refusal: errorText(err) };
  }
}

