/**
 * The forecast policy (the thesis's machine learning, issue 15 point 5): the model in force
 * predicts each container's ops/s on every node (snapshot.forecast, filled by the controller
 * or the simulator: this file reads nothing else of the model, so it stays pure). A container
 * moves to the node where the prediction beats the model's prediction on its own node (its
 * measured ops, mean of its window, when that is missing):
 *   predicted / own - 1 >= rewardThreshold, predicted - own >= minOpsGain, and
 *   gain = (predicted - own) x period  >  costBenefitRatio x measured x expected downtime
 * (cost.ts fits the downtime on this cluster's own migrations). The ops lost while frozen are
 * the cost: a move whose gain the next period cannot pay back is not worth the freeze.
 *
 * No forecast (no model in force), a missing or non-finite prediction for a pair, a container
 * that reports no ops: no move for it, with a note saying which.
 */
import { fitCost, moveCost } from './cost';
import { neighboursLoss, sourceGain } from './forecast-neighbours';
import { finite, fmt, loadsOf, meanOf, pct } from './load';
import type { Move, Policy, PolicyInput } from './policy';
import { ForecastSchema, type ForecastSettings, validatorWithPeriod } from './settings';

/** The forecast policy also needs the evaluation period (the horizon of its gain); the decision step adds it. */
export type ForecastPolicySettings = ForecastSettings & { periodMs: number };

export const forecast: Policy<ForecastPolicySettings> = {
  name: 'forecast',
  summary: "Thesis: a container moves where the model in force predicts it more ops/s than on its own node, its old neighbours' gain and new neighbours' loss counted, by the reward threshold and the model's error, and the ops gained over the next period outweigh those lost while it is frozen.",
  defaults: { ...ForecastSchema.parse({}), periodMs: 150_000 },
  validate: validatorWithPeriod(ForecastSchema),
  propose({ snapshot, settings: s, allowed, movable, note }: PolicyInput<ForecastPolicySettings>): Move[] {
    const fc = snapshot.forecast;
    if (!fc) {
      note?.('forecast: no model in force (train one with `herd model train`): nothing to predict with');
      return [];
    }
    const model = fitCost(snapshot.migrations);
    const periodS = s.periodMs / 1000;
    const nodes = new Set(snapshot.nodes.map((n) => n.id));
    const loads = loadsOf(snapshot);
    // a gain the model cannot tell from its own error is no gain (its validation RMSE, when known)
    const noise = finite(fc.errorOps ?? NaN);
    const moves: Move[] = [];
    let noPrediction = 0;
    let noOps = 0;
    let nearMiss: { rel: number; text: string } | undefined;
    for (const c of snapshot.containers) {
      const measured = meanOf(c.ops);
      if (!Number.isFinite(measured) || measured < 0) {
        noOps++; // first: a driver forecasts no container that reports no ops
        continue;
      }
      const byNode = fc.opsByNode[c.herdId];
      if (!byNode || !nodes.has(c.node)) {
        noPrediction++;
        continue;
      }
      const targets = Object.keys(byNode)
        .filter((to) => to !== c.node && nodes.has(to) && Number.isFinite(byNode[to]))
        .sort((a, b) => byNode[b] - byNode[a] || (a < b ? -1 : 1)); // best prediction first; ties to the smaller id
      if (targets.length === 0) {
        noPrediction++;
        continue;
      }
      if (movable(c.herdId) !== null) continue; // may not move at all: recorded once
      const own = byNode[c.node];
      const ownKnown = typeof own === 'number' && Number.isFinite(own);
      // prediction against prediction: a model's error on a container (an application it
      // knows less well, a level it never saw) is much the same on every node, so it cancels
      const base = ownKnown ? Math.max(0, own) : measured;
      const from = loads.get(c.node);
      const mine = from?.containers.find((k) => k.view.herdId === c.herdId);
      const freed = from && mine ? sourceGain(mine, from) : 0;
      // the best allowed target by the move's net effect: the mover's predicted gain, what its
      // old neighbours gain, what its new ones lose (forecast-neighbours.ts)
      let best: { to: string; ops: number; net: number; loss: number } | undefined;
      for (const to of targets) {
        if (allowed(c.herdId, to) !== null) continue;
        const dst = loads.get(to);
        const loss = dst && mine && from ? neighboursLoss(mine, from, dst) : 0;
        const net = byNode[to] - base + freed - loss;
        if (!best || net > best.net) best = { to, ops: byNode[to], net, loss };
      }
      if (best === undefined) continue;
      const gainOps = best.net;
      const rel = base > 0 ? gainOps / base : gainOps > 0 ? Infinity : 0;
      const cost = moveCost(model, c, finite(meanOf(c.cpu)));
      const lostOps = measured * (cost.downtimeMs / 1000);
      const gain = gainOps * periodS;
      const ownText = ownKnown ? ` (predicted ${fmt(own)} on ${c.node})` : '';
      const others = freed > 0 || best.loss > 0 ? `, its neighbours on ${c.node} gaining ${fmt(freed)} and on ${best.to} losing ${fmt(best.loss)} ops/s` : '';
      const pair = `model ${fc.modelVersion} predicts ${fmt(best.ops)} ops/s for ${c.name} on ${best.to} against its measured ${fmt(measured)} ops/s on ${c.node}${ownText}${others}`;
      if (rel < s.rewardThreshold || gainOps < s.minOpsGain || gainOps < noise || !(gain > s.costBenefitRatio * lostOps)) {
        const why =
          rel < s.rewardThreshold || gainOps < s.minOpsGain
            ? `${base > 0 ? pct(rel) : `${fmt(gainOps)} ops/s`} more, under the reward threshold ${pct(s.rewardThreshold)} (or ${fmt(s.minOpsGain)} ops/s)`
            : gainOps < noise
            ? `${fmt(gainOps)} ops/s more, within the model's error (validation RMSE ${fmt(noise)} ops/s)`
            : `${fmt(gain)} ops gained over the ${fmt(periodS)} s period do not outweigh ${fmt(lostOps)} ops lost x ratio ${fmt(s.costBenefitRatio)} (${cost.reason})`;
        if (!nearMiss || rel > nearMiss.rel) nearMiss = { rel, text: `forecast: the best prediction, ${pair}, is ${why}` };
        continue;
      }
      const score = Number.isFinite(rel) ? rel : gainOps;
      moves.push({
        herdId: c.herdId,
        from: c.node,
        to: best.to,
        score,
        policy: 'forecast',
        reason:
          `${pair}${base > 0 ? `: ${pct(rel)} more` : ''} >= reward threshold ${pct(s.rewardThreshold)}; ` +
          `${fmt(gain)} ops gained over the ${fmt(periodS)} s period outweigh ${fmt(lostOps)} ops lost while frozen: ${cost.reason}`,
        figures: { neighboursLoss: best.loss, sourceGain: freed, predictedOps: best.ops, measuredOps: measured, predictedOwnOps: finite(own, -1), gainRatio: score, gainOps: gain, lostOps, downtimeMs: cost.downtimeMs, bytes: cost.bytes },
      });
    }
    if (noPrediction) note?.(`forecast: model ${fc.modelVersion} gives no usable prediction for ${noPrediction} container(s) on any other node`);
    if (noOps) note?.(`forecast: ${noOps} container(s) report no ops (no log regex or scrape), nothing to compare a prediction with`);
    if (!moves.length && nearMiss) note?.(nearMiss.text);
    return moves.sort((a, b) => b.score - a.score || (a.herdId < b.herdId ? -1 : 1));
  },
};
