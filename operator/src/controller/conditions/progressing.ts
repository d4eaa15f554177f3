// Progressing: the operator is scaling, draining or rolling; False once converged.
import type { ComputedCondition } from './condition.ts';
import type { ClusterFacts } from './facts.ts';

export function progressingCondition(f: ClusterFacts): ComputedCondition {
  const t = 'Progressing' as const;
  if (f.deleting) {
    const left = f.draining.map((x) => x.pod).concat(f.excess);
    return { type: t, status: 'True', reason: 'Deleting', message: left.length > 0 ? `draining out before deletion: ${left.join(', ')}` : 'every node drained; removing what is left' };
  }
  if (f.draining.length > 0) {
    const d = f.draining[0];
    return { type: t, status: 'True', reason: d.reason === 'roll' ? 'Rolling' : 'ScalingDown', message: `draining ${f.draining.map((x) => x.pod).join(', ')}` };
  }
  // A rollout holds its slot until its last new pod is Ready (the status keeps saying so, which
  // is how an operator restart finds a rollout's tail: cluster_roll.ts rollingNow).
  if (f.rollout === 'rolling') return { type: t, status: 'True', reason: 'Rolling', message: f.outdated.length > 0 ? `to roll: ${f.outdated.join(', ')}` : `${f.readyServing} of ${f.desired} nodes ready with the new pod template` };
  if (f.excess.length > 0) return { type: t, status: 'True', reason: 'ScalingDown', message: `to drain: ${f.excess.join(', ')}` };
  if (f.missing.length > 0) return { type: t, status: 'True', reason: 'ScalingUp', message: `creating nodes ${f.missing.join(', ')}` };
  if (f.readyServing < f.desired) return { type: t, status: 'True', reason: 'WaitingForNodes', message: `${f.readyServing} of ${f.desired} nodes ready` };
  // No count of the clusters ahead in the message: it would rewrite every waiting cluster's status each time one finished.
  if (f.rollout === 'waiting') return { type: t, status: 'True', reason: 'RolloutPending', message: `to roll: ${f.outdated.join(', ')}; waiting for a rollout slot (--max-concurrent-rollouts)` };
  if (f.outdated.length > 0) return { type: t, status: 'True', reason: 'Rolling', message: `to roll: ${f.outdated.join(', ')}` };
  return { type: t, status: 'False', reason: 'Converged', message: `${f.desired} nodes serving with the current spec` };
}
