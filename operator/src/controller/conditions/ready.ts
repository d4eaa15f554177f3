// Ready: every desired node exists, serves and passes its readiness probe.
import type { ComputedCondition } from './condition.ts';
import type { ClusterFacts } from './facts.ts';

export function readyCondition(f: ClusterFacts): ComputedCondition {
  if (f.deleting) return { type: 'Ready', status: 'False', reason: 'Deleting', message: 'being deleted: draining every node before its spool claim is deleted' };
  if (f.readyServing >= f.desired && f.missing.length === 0) {
    return { type: 'Ready', status: 'True', reason: 'AllNodesReady', message: `${f.readyServing} of ${f.desired} nodes ready` };
  }
  return { type: 'Ready', status: 'False', reason: 'NodesNotReady', message: `${f.readyServing} of ${f.desired} nodes ready` };
}
