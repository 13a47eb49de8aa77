/**
 * The sample log's and the uplink's positions on /metrics, read at scrape time: how far this
 * node has logged, how far the coordinator has acknowledged, what a failover would replay.
 */
import type { SampleLog } from '../samplelog';
import type { Uplink } from '../uplink';
import type { NodeMetrics } from './node-metrics';

export function registerNodeGauges(metrics: NodeMetrics, sampleLog: SampleLog, uplink: Uplink): void {
  metrics.gaugeOf('herd_samplelog_committed_seq', 'Highest batch of this node\'s sample log that is on disk.', () => sampleLog.committedSeq());
  metrics.gaugeOf('herd_uplink_acked_seq', 'Highest batch the coordinator acknowledged (0 while disconnected).', () => uplink.ackedSeq());
  metrics.gaugeOf('herd_uplink_connected', '1 while this node streams to a coordinator.', () => (uplink.connected() ? 1 : 0));
  metrics.counterOf('herd_uplink_acknowledged_batches_total', 'Batches the coordinator acknowledged since this process started.', () => uplink.acknowledgedBatches);
  metrics.counterOf('herd_uplink_replayed_batches_total', 'Batches resent on (re)connection because the coordinator lacked them.', () => uplink.replayedBatches);
  metrics.gaugeOf('herd_samplelog_bytes', 'Size of the local sample log in bytes.', () => sampleLog.bytes());
}
