// The claim invariant: a spool claim is deleted only after a node running on that very claim
// reported itself drained. The first two cases are the verified bugs of issue 9, reproduced by
// running the planner twice.
import assert from 'node:assert/strict';
import { DRAIN_ANSWER_MAX_AGE_MS, drainedOnClaim } from '../../../operator/src/controller/claims.ts';
import { queueProbeOf } from '../../../operator/src/controller/node-admin.ts';
import type { ObservedPod } from '../../../operator/src/controller/observed.ts';
import { plan } from '../../../operator/src/controller/plan.ts';
import { convergedWorld, mailCluster, World } from './fixtures.ts';

const claimDeletes = (w: World): string[] => plan(w.observed()).delete.filter((d) => d.kind === 'PersistentVolumeClaim').map((d) => d.name);
const scaleTo = (w: World, replicas: number): void => { w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas } }; };

describe('operator: a spool claim goes only after its node reported itself drained', () => {
  it('bug 1: a recovered draining pod that is Pending without an address does not lose its claim', () => {
    const w = convergedWorld(4);
    scaleTo(w, 3);
    w.objects.delete('Pod/mc-3'); // went away mid scale-down, before it drained
    w.apply(plan(w.observed())); // brought back as draining
    assert.equal(w.get('Pod', 'mc-3')?.metadata.labels?.['mailcluster.io/role'], 'draining');
    for (let pass = 0; pass < 3; pass++) {
      assert.deepEqual(claimDeletes(w), [], `pass ${pass}: Pending, no IP: says nothing about its spool`);
      w.apply(plan(w.observed()));
    }
    assert.ok(w.get('PersistentVolumeClaim', 'mc-3-spool'));
    // It gets an address: asked to drain; only its own word lets the claim go.
    w.run('mc-3', '127.40.0.33');
    const asked = plan(w.observed());
    assert.deepEqual(asked.drain.map((d) => d.pod), ['mc-3']);
    w.apply(asked);
    w.report('mc-3', 7);
    assert.deepEqual(claimDeletes(w), []);
    w.report('mc-3', 0);
    assert.deepEqual(claimDeletes(w), ['mc-3-spool']);
  });

  it('bug 2: an excess serving pod without an address is drained, not deleted with its claim', () => {
    const w = convergedWorld(4);
    // mc-3 restarted (a new pod on the same spool) and is still Pending when the scale-down comes.
    w.objects.delete('Pod/mc-3');
    w.apply(plan(w.observed()));
    assert.equal(w.get('Pod', 'mc-3')?.metadata.labels?.['mailcluster.io/role'], 'serving');
    scaleTo(w, 3);
    const p = plan(w.observed());
    assert.deepEqual(p.delete, [], 'nothing deleted');
    assert.deepEqual(p.patchPods.map((x) => [x.name, x.labels]), [['mc-3', { 'mailcluster.io/role': 'draining' }]], 'relabelled draining instead');
    w.apply(p);
    for (let pass = 0; pass < 3; pass++) { assert.deepEqual(claimDeletes(w), []); w.apply(plan(w.observed())); }
    w.run('mc-3', '127.40.0.43');
    w.apply(plan(w.observed()));
    w.report('mc-3', 0);
    assert.deepEqual(claimDeletes(w), ['mc-3-spool']);
  });

  it('an answer recorded for an earlier pod of the same name does not count', () => {
    const w = convergedWorld(4);
    scaleTo(w, 3);
    w.apply(plan(w.observed()));
    w.report('mc-3', 0); // mc-3 (this pod) drained ...
    const old = w.queues['mc-3'];
    w.objects.delete('Pod/mc-3'); // ... but then it is force-deleted and a new pod starts on the claim
    w.apply(plan(w.observed()));
    w.run('mc-3', '127.40.0.53');
    w.queues['mc-3'] = old;
    assert.deepEqual(claimDeletes(w), [], 'the old pod\'s answer is not the new pod\'s');
  });

  it('a node that does not mount the claim cannot vouch for it; a held message is not drained', () => {
    const w = convergedWorld(4);
    scaleTo(w, 3);
    w.apply(plan(w.observed()));
    const pod = w.get('Pod', 'mc-3') as ObservedPod;
    w.report('mc-3', 0);
    const now = w.now;
    assert.equal(drainedOnClaim('mc-3-spool', pod, w.queues['mc-3'], now), true);
    assert.equal(drainedOnClaim('mc-2-spool', pod, w.queues['mc-3'], now), false);
    const bare = { ...pod, spec: { ...pod.spec, volumes: [] } } as ObservedPod;
    assert.equal(drainedOnClaim('mc-3-spool', bare, w.queues['mc-3'], now), false);
    const fresh = { askedAt: now.getTime(), restarts: 0, uid: pod.metadata.uid };
    assert.equal(drainedOnClaim('mc-3-spool', pod, { total: 1, drained: true, ...fresh }, now), false);
    assert.equal(drainedOnClaim('mc-3-spool', pod, { error: 'timeout', uid: pod.metadata.uid }, now), false);
    assert.equal(drainedOnClaim('mc-3-spool', pod, undefined, now), false);
  });

  it('a cached drained answer vouches only while fresh, and only for the process that gave it', () => {
    const w = convergedWorld(4);
    scaleTo(w, 3);
    w.apply(plan(w.observed()));
    const pod = w.get('Pod', 'mc-3') as ObservedPod;
    const t = w.now.getTime();
    const answer = { total: 0, draining: true, drained: true, uid: pod.metadata.uid, askedAt: t, restarts: 0 };
    const at = (ms: number) => new Date(t + ms);
    assert.equal(drainedOnClaim('mc-3-spool', pod, answer, at(DRAIN_ANSWER_MAX_AGE_MS)), true, 'at the age limit');
    assert.equal(drainedOnClaim('mc-3-spool', pod, answer, at(DRAIN_ANSWER_MAX_AGE_MS + 1)), false, 'past it: too old to vouch');
    const { askedAt: _a, ...undated } = answer;
    assert.equal(drainedOnClaim('mc-3-spool', pod, undated, at(0)), false, 'an answer without its time vouches for nothing');
    const { restarts: _r, ...uncounted } = answer;
    assert.equal(drainedOnClaim('mc-3-spool', pod, uncounted, at(0)), false, 'nor one without the restart count');
    // The container restarted after it answered: the new process forgot the drain and may take mail.
    const restarted = { ...pod, status: { ...pod.status, containerStatuses: [{ ready: true, restartCount: 1, state: {} }] } } as ObservedPod;
    assert.equal(drainedOnClaim('mc-3-spool', restarted, answer, at(0)), false, 'said by an earlier process');
    // Through the planner: the same stale answer deletes nothing; a fresh one does.
    w.queues['mc-3'] = answer;
    w.now = at(DRAIN_ANSWER_MAX_AGE_MS + 1000);
    assert.deepEqual(claimDeletes(w), []);
    w.report('mc-3', 0);
    assert.deepEqual(claimDeletes(w), ['mc-3-spool']);
  });

  it('reads GET /queue defensively: only drained === true with nothing queued is drained', () => {
    const full = { total: 0, deferred: 0, active: 0, held: 0, draining: true, listening: false, sessions: 0, drained: true, oldestSeconds: null };
    assert.deepEqual(queueProbeOf(full, 'u1'), { total: 0, draining: true, drained: true, uid: 'u1' });
    assert.equal((queueProbeOf({ total: 0, draining: true }) as { drained: boolean }).drained, false, 'missing drained: not drained');
    assert.equal((queueProbeOf({ ...full, drained: 'true' }) as { drained: boolean }).drained, false);
    assert.equal((queueProbeOf({ ...full, drained: 1 }) as { drained: boolean }).drained, false);
    assert.equal((queueProbeOf({ ...full, total: 3 }) as { drained: boolean }).drained, false, 'drained with mail counted is not');
    assert.equal((queueProbeOf({ ...full, draining: false }) as { drained: boolean }).drained, false);
    assert.ok('error' in queueProbeOf({ drained: true }));
    assert.ok('error' in queueProbeOf(null));
    assert.ok('error' in queueProbeOf({ total: -1, drained: true }));
  });
});
