import { ConfigError } from '../agent/config';

/** --tls-san, as `herd agent`, `herd init` and `herd join` explain it. */
export const TLS_SAN_HELP =
  "another DNS name or IP address this node's certificate names, besides localhost, 127.0.0.1, ::1, the host name, the interface addresses and the advertised address; repeat for each (no wildcards)";

/** Overlays the flags that were given on the config file's keys. */
export function mergeFlags(file: Record<string, any>, o: Record<string, any>): Record<string, unknown> {
  const s: Record<string, any> = { ...file };
  const set = (key: string, v: unknown) => {
    if (v !== undefined) s[key] = v;
  };
  set('nodeId', o.nodeId);
  set('dataDir', o.dataDir);
  set('listen', o.listen);
  set('advertise', o.advertise);
  set('peers', o.peer);
  set('dockerSocket', o.dockerSocket);
  set('dockerTimeoutMs', o.dockerTimeout);
  set('pmproxyUrl', o.pmproxyUrl);
  set('pcpMetrics', o.pcpMetric);
  set('cgroupRoot', o.cgroupRoot);
  if (o.blkioAccounting === false) s.blkioAccounting = false;
  if (o.insecure === true) s.insecure = true;
  if (o.pageServer === false) s.pageServer = false;
  set('pageServerMinBytes', o.pageServerMinBytes);
  set('maxInFlight', o.maxInFlight);
  set('meshDeadAfterMs', o.meshDeadAfter);
  if (o.webListen !== undefined || o.metricsPlain !== undefined) {
    const web = { ...(file.web ?? {}) };
    if (o.webListen !== undefined) web.listen = o.webListen;
    if (o.metricsPlain !== undefined) web.plainMetrics = o.metricsPlain;
    s.web = web;
  }
  set('logLevel', o.logLevel ?? (file.logLevel === undefined ? process.env.HERD_LOG_LEVEL : undefined));
  const intervals = { ...(file.intervals ?? {}) };
  for (const [flag, key] of [['hostInterval', 'hostMs'], ['containerInterval', 'containerMs'], ['trackInterval', 'trackMs'], ['pcpInterval', 'pcpMs']]) {
    if (o[flag] !== undefined) intervals[key] = o[flag];
  }
  if (Object.keys(intervals).length) s.intervals = intervals;
  const retention = { ...(file.retention ?? {}) };
  if (o.retentionHours !== undefined) retention.maxAgeHours = o.retentionHours;
  if (o.retentionBytes !== undefined) retention.maxBytes = o.retentionBytes;
  if (o.minFreeBytes !== undefined) retention.minFreeBytes = o.minFreeBytes;
  if (Object.keys(retention).length) s.retention = retention;
  if (o.tlsSan !== undefined) s.tls = { ...(file.tls ?? {}), sans: o.tlsSan };
  if (o.label) {
    const labels: Record<string, string> = { ...(file.labels ?? {}) };
    for (const kv of o.label as string[]) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new ConfigError(`flag --label "${kv}": must be key=value`);
      labels[kv.slice(0, i)] = kv.slice(i + 1);
    }
    s.labels = labels;
  }
  return s;
}
