/**
 * Random baseline (for the simulator's comparisons): with probability `moveProbability`, one
 * random container that may move goes to a random node the filters allow. It ignores load
 * on purpose: a policy that does not beat it is not using its data.
 */
import type { Move, Policy, PolicyInput } from './policy';
import { RandomSchema, type RandomSettings, validatorFor } from './settings';

/** Random draws before giving up in a cluster where most moves are refused. */
const ATTEMPTS = 32;

export const randomPolicy: Policy<RandomSettings> = {
  name: 'random',
  summary: 'Baseline: one random allowed move per round (with a set probability), load ignored.',
  defaults: RandomSchema.parse({}),
  validate: validatorFor(RandomSchema),
  propose({ snapshot, settings: s, allowed, random, note }: PolicyInput<RandomSettings>): Move[] {
    const draw = random();
    if (draw >= s.moveProbability) {
      note?.(`random: drew ${draw.toFixed(3)}, not under the move probability ${s.moveProbability}`);
      return [];
    }
    const { containers, nodes } = snapshot;
    if (containers.length === 0 || nodes.length < 2) {
      note?.('random: needs a container and two nodes');
      return [];
    }
    for (let i = 0; i < ATTEMPTS; i++) {
      const c = containers[Math.floor(random() * containers.length)];
      const t = nodes[Math.floor(random() * nodes.length)];
      if (!c || !t || t.id === c.node || allowed(c.herdId, t.id) !== null) continue;
      return [{ herdId: c.herdId, from: c.node, to: t.id, score: 0, policy: 'random', reason: `random baseline: ${c.name} drawn among ${containers.length} containers, ${t.id} among ${nodes.length} nodes (move probability ${s.moveProbability})`, figures: { draw } }];
    }
    note?.(`random: ${ATTEMPTS} random draws found no allowed move`);
    return [];
  },
};
