/**
 * Writes as fast as it can, as an agent and a coordinator do, into one data dir: sample-log
 * batches of 2000 samples (SampleLog.append) and the same batches into the coordinator's
 * store (SampleStore.ingest). Prints `log <seq>` once a batch is durable in the log and
 * `store <seq>` once the store has it: what it printed was acknowledged. Killed -9 by
 * test/integration/storage.test.ts, which then checks that nothing acknowledged is lost.
 */
import { openEnv } from '../../common/db';
import { SampleLog } from '../../agent/samplelog';
import { SampleStore } from '../../coordinator/samplestore';
import { meshCodec } from '../../common/proto';

const dir = process.argv[2];
const env = openEnv(dir, { mapSizeBytes: 1 << 30 });
const sampleLog = new SampleLog(env, 'writer');
const store = new SampleStore(env);
const decode = meshCodec().decodeAgent;
const ingest = (seq: number) => {
  const [batch] = sampleLog.read(seq - 1, 1);
  const msg = decode(batch.message) as any;
  return store.ingest('writer', sampleLog.logId, seq, Number(msg.batch.created_ms), msg.batch.series).then(() => process.stdout.write(`store ${seq}\n`));
};
// As the uplink does after a restart: the store gets, in order, what it has not acknowledged.
for (let seq = store.ackedSeq('writer') + 1; seq <= sampleLog.lastSeq(); seq++) void ingest(seq);
let i = 0;
for (;;) {
  const now = Date.now();
  const samples = Array.from({ length: 2000 }, (_, k) => ({ entity: `e${k % 50}`, metric: `m${k % 40}`, ts: now - (k % 7), value: i * 1000 + k }));
  const seq = await sampleLog.append(samples);
  process.stdout.write(`log ${seq}\n`);
  void ingest(seq);
  i++;
}
