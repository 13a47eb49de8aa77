import { decide, initialState } from '../coordinator/control/decide';
import { validateSettings } from '../coordinator/control/settings';
import { syntheticSnapshot } from '../test/fixtures/control-snapshot';
const s = syntheticSnapshot(500, 5000);
for (const p of ['cpu-greedy','cpu-greedy-mt','oltp-disk','balance','random','low-node-utilization']) {
const v = validateSettings({ mode: 'auto', policies: [p], hysteresisRounds: 1 });
if (!v.ok) throw new Error(v.error);
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  const r = decide(initialState(), s, v.settings, { term: 1, trigger: 'schedule', id: 'd-1' });
  if (i==4) console.log(p, performance.now() - t0, r.moves.length, r.decision.note.slice(0,400));
}}
