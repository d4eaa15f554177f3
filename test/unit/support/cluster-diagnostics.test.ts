// What a failed e2e test prints about the cluster: the node's conditions and taints, and only
// the pods that are not running and ready or are being deleted, each with why.
import assert from 'node:assert/strict';
import { nodeSummary, podSummary } from '../../support/cluster-diagnostics.ts';

describe('cluster diagnostics (pure summaries)', () => {
  it('names each node\'s conditions and taints', () => {
    const text = nodeSummary(JSON.stringify({ items: [{
      metadata: { name: 'local-node' },
      spec: { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule' }] },
      status: { conditions: [{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', lastTransitionTime: '2026-11-30T21:00:00Z' }] },
    }] }));
    assert.equal(text, 'local-node: Ready=Unknown(NodeStatusUnknown)@2026-11-30T21:00:00Z; taints node.kubernetes.io/unreachable:NoSchedule');
    assert.equal(nodeSummary(JSON.stringify({ items: [] })), '(no node)');
  });

  it('lists pending, not ready and terminating pods with their reasons, and leaves out running, ready and completed ones', () => {
    const ready = { conditions: [{ type: 'Ready', status: 'True' }] };
    const text = podSummary(JSON.stringify({ items: [
      { metadata: { namespace: 'a', name: 'fine' }, status: { phase: 'Running', ...ready } },
      { metadata: { namespace: 'a', name: 'done' }, status: { phase: 'Succeeded' } },
      { metadata: { namespace: 'a', name: 'pending', creationTimestamp: 't0' }, status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] } },
      { metadata: { namespace: 'a', name: 'crashing', creationTimestamp: 't1' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [{ name: 'node', ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s' } } }] } },
      { metadata: { namespace: 'a', name: 'leaving', creationTimestamp: 't2', deletionTimestamp: 't3' }, status: { phase: 'Running', ...ready } },
    ] }));
    assert.deepEqual(text.split('\n'), [
      'a/pending Pending created t0 unscheduled(Unschedulable)',
      'a/crashing Running created t1 node:waiting(CrashLoopBackOff back-off 40s) ready=false restarts=4',
      'a/leaving Running created t2 deleting since t3',
    ]);
    assert.equal(podSummary(JSON.stringify({ items: [{ metadata: { name: 'x' }, status: { phase: 'Running', ...ready } }] })), '(every pod is running and ready)');
  });
});
