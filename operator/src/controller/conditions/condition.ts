// metav1.Condition handling: a computed condition keeps its lastTransitionTime unless its
// status actually changed, so that an unchanged cluster produces an identical status.
import type { Condition, ConditionType } from '../../api/v1alpha1/types.ts';

export interface ComputedCondition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export function toCondition(computed: ComputedCondition, previous: Condition[] | undefined, generation: number, now: Date): Condition {
  const before = previous?.find((c) => c.type === computed.type);
  const lastTransitionTime = before && before.status === computed.status
    ? before.lastTransitionTime
    : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { ...computed, observedGeneration: generation, lastTransitionTime };
}
