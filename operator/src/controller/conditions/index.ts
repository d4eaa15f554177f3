import type { Condition } from '../../api/v1alpha1/types.ts';
import { toCondition } from './condition.ts';
import { degradedCondition } from './degraded.ts';
import type { ClusterFacts } from './facts.ts';
import { progressingCondition } from './progressing.ts';
import { readyCondition } from './ready.ts';

export type { ClusterFacts } from './facts.ts';

/** Ready, Progressing and Degraded, in that order. */
export function computeConditions(facts: ClusterFacts, previous: Condition[] | undefined, generation: number, now: Date): Condition[] {
  return [readyCondition(facts), progressingCondition(facts), degradedCondition(facts)]
    .map((c) => toCondition(c, previous, generation, now));
}
