/**
 * Whether a migration's memory pages go to the target's CRIU page server or travel with the
 * one direct dump. The page server costs a second dump (the local one that ends the source's
 * task and keeps a checkpoint for a rollback), which a small container pays for in downtime;
 * above some memory size sending the pages while dumping wins (docs/migration.md#which-path).
 * Pure: the caller reads the container's memory in use (its cgroup, like docker stats).
 */

export interface PagePath {
  pageServer: boolean;
  /** For the migration's record and log, e.g. "page server: 212 MB in use >= 64 MB". */
  reason: string;
}

const MB = 1 << 20;
const mb = (bytes: number) => `${Math.round(bytes / MB)} MB`;

/**
 * @param inUseBytes the container's memory in use now; undefined when it could not be read
 * @param minBytes settings.pageServerMinBytes: the page server from this size on
 */
export function choosePagePath(inUseBytes: number | undefined, minBytes: number): PagePath {
  if (minBytes <= 0) return { pageServer: true, reason: 'page server: pageServerMinBytes is 0' };
  // unknown: the page server, whose worst case (a small container) costs less than the direct
  // path's worst case (a large one)
  if (inUseBytes === undefined || !Number.isFinite(inUseBytes)) return { pageServer: true, reason: `page server: memory in use unknown (its cgroup could not be read), threshold ${mb(minBytes)}` };
  return inUseBytes >= minBytes
    ? { pageServer: true, reason: `page server: ${mb(inUseBytes)} in use >= ${mb(minBytes)}` }
    : { pageServer: false, reason: `direct: ${mb(inUseBytes)} in use < ${mb(minBytes)}` };
}
