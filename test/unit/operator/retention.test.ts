// spec.storage.retentionPolicy.whenDeleted: Retain keeps the claims (no owner reference) for a
// MailCluster of the same name to adopt; Delete holds the MailCluster with a finalizer while its
// nodes drain out, and lets each claim go only once its node reported itself drained.
import assert from 'node:assert/strict';
import { SPOOL_FINALIZER } from '../../../operator/src/controller/cluster_deletion.ts';
import { ownerKey } from '../../../operator/src/controller/manager.ts';
import type { KObject, ObservedPod } from '../../../operator/src/controller/observed.ts';
import { plan } from '../../../operator/src/controller/plan.ts';
import { spoolClaimsOf } from '../../../operator/src/controller/reconciler.ts';
import { isEmptyPlan, mailCluster, names, NOW, World } from './fixtures.ts';

function converged(w: World): World {
  for (let k = 0; k < 3; k++) { w.apply(plan(w.observed())); w.runAll(); }
  w.setLoadBalancer('127.41.0.1');
  w.apply(plan(w.observed()));
  return w;
}

const withFinalizers = (w: World, finalizers: string[] | undefined): void => {
  w.cluster = { ...w.cluster, metadata: { ...w.cluster.metadata, ...(finalizers ? { finalizers } : {}) } };
};
const deleting = (w: World): void => {
  w.cluster = { ...w.cluster, metadata: { ...w.cluster.metadata, deletionTimestamp: NOW.toISOString() } };
};
/** Garbage collection once the MailCluster is gone: everything with an owner reference to it. */
const collectGarbage = (w: World): void => {
  for (const [k, o] of [...w.objects]) if ((o.metadata.ownerReferences ?? []).some((r) => r.uid === w.cluster.metadata.uid)) w.objects.delete(k);
};

describe('operator: spool claims when a MailCluster is deleted (retentionPolicy)', () => {
  it('Retain (default): no finalizer, claims carry no owner, deletion plans nothing and garbage collection leaves every claim', () => {
    const w = converged(new World(mailCluster({ replicas: 3 })));
    assert.equal(w.cluster.metadata.finalizers, undefined);
    for (const c of w.list('PersistentVolumeClaim')) assert.equal(c.metadata.ownerReferences, undefined);
    deleting(w);
    assert.ok(isEmptyPlan(plan(w.observed())));
    assert.equal(plan(w.observed()).finalizers, undefined);
    collectGarbage(w);
    assert.deepEqual(names(w.list('Pod')), []);
    assert.deepEqual(names(w.list('PersistentVolumeClaim')), ['mc-0-spool', 'mc-1-spool', 'mc-2-spool']);
  });

  it('a MailCluster created again with the same name adopts the retained claims and drains the surplus ones', () => {
    const w = converged(new World(mailCluster({ replicas: 4 })));
    deleting(w);
    collectGarbage(w);
    // Created again, smaller, with a new UID.
    w.cluster = { ...mailCluster({ replicas: 2 }), metadata: { ...mailCluster().metadata, uid: 'uid-again' } };
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'PersistentVolumeClaim'), [], 'no claim is created: the old ones are mounted');
    assert.deepEqual(names(p.apply, 'Pod'), ['mc-0', 'mc-1', 'mc-2', 'mc-3']);
    const role = (n: string) => p.apply.find((o) => o.metadata.name === n)!.metadata.labels!['mailcluster.io/role'];
    assert.deepEqual(['mc-0', 'mc-1', 'mc-2', 'mc-3'].map(role), ['serving', 'serving', 'draining', 'draining'], 'the surplus claims come back as draining pods');
    for (const pod of p.apply.filter((o) => o.kind === 'Pod') as any[]) {
      assert.equal(pod.spec.volumes.find((v: any) => v.name === 'spool').persistentVolumeClaim.claimName, `${pod.metadata.name}-spool`);
      assert.equal(pod.metadata.ownerReferences[0].uid, 'uid-again');
    }
    w.apply(p);
    w.runAll();
    w.apply(plan(w.observed())); // drain requests
    w.report('mc-3', 4);
    w.report('mc-2', 0);
    const q = plan(w.observed());
    assert.deepEqual(q.delete.filter((d) => d.kind === 'PersistentVolumeClaim').map((d) => d.name), ['mc-2-spool'], 'only the claim whose node reported itself drained');
  });

  it('disowns a claim that still has an owner reference (made by an earlier version), keeping its size and class', () => {
    const w = converged(new World(mailCluster({ replicas: 2, storage: { size: '2Gi' } })));
    const c = w.get('PersistentVolumeClaim', 'mc-1-spool')!;
    c.metadata.ownerReferences = [{ kind: 'MailCluster', name: 'mc', uid: 'uid-1234', controller: true }];
    (c.spec as any).resources.requests.storage = '1Gi';
    (c.spec as any).storageClassName = 'standard';
    const p = plan(w.observed());
    const applied = p.apply.filter((o) => o.kind === 'PersistentVolumeClaim') as any[];
    assert.deepEqual(applied.map((o) => o.metadata.name), ['mc-1-spool']);
    assert.equal(applied[0].metadata.ownerReferences, undefined);
    assert.deepEqual(applied[0].spec.resources.requests, { storage: '1Gi' }, 'no resize');
    assert.equal(applied[0].spec.storageClassName, 'standard');
    w.apply(p);
    assert.ok(isEmptyPlan(plan(w.observed())));
  });

  it('Delete: adds its finalizer; switching back to Retain removes it', () => {
    const w = new World(mailCluster({ replicas: 2, storage: { retentionPolicy: { whenDeleted: 'Delete' } } }));
    withFinalizers(w, ['other.io/keep']);
    assert.deepEqual(plan(w.observed()).finalizers, ['other.io/keep', SPOOL_FINALIZER]);
    withFinalizers(w, ['other.io/keep', SPOOL_FINALIZER]);
    assert.equal(plan(w.observed()).finalizers, undefined);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, storage: { retentionPolicy: { whenDeleted: 'Retain' } } } };
    assert.deepEqual(plan(w.observed()).finalizers, ['other.io/keep']);
  });

  it('Delete: deletion drains the nodes out one at a time, deletes each claim only once drained, then releases', () => {
    const w = converged(new World(mailCluster({ replicas: 3, storage: { retentionPolicy: { whenDeleted: 'Delete' } } })));
    withFinalizers(w, [SPOOL_FINALIZER]);
    deleting(w);
    // Every node holds 3 messages. A node asked to drain hands its mail to a serving peer; the
    // last one has none: it delivers one message a pass (on its own retry schedule).
    const held = new Map([['mc-0', 3], ['mc-1', 3], ['mc-2', 3]]);
    const asked = (n: string) => Boolean(w.get('Pod', n)?.metadata.annotations?.['mailcluster.io/drain-requested']);
    const order: string[] = [];
    let released: string[] | undefined;
    for (let step = 0; step < 60 && !released; step++) {
      w.queues = {};
      for (const pod of w.list('Pod') as ObservedPod[]) {
        const n = pod.metadata.name;
        if (pod.metadata.labels?.['mailcluster.io/role'] !== 'draining') continue;
        const peer = (w.list('Pod') as ObservedPod[]).find((x) => x.metadata.labels?.['mailcluster.io/role'] === 'serving');
        if (asked(n) && peer) { held.set(peer.metadata.name, held.get(peer.metadata.name)! + held.get(n)!); held.set(n, 0); }
        if (!asked(n) && !peer && held.get(n)! > 0) held.set(n, held.get(n)! - 1);
        w.report(n, held.get(n)!, { draining: asked(n) });
      }
      const p = plan(w.observed());
      const drainingNow = (w.list('Pod') as ObservedPod[]).filter((x) => x.metadata.labels?.['mailcluster.io/role'] === 'draining');
      assert.ok(drainingNow.length + p.patchPods.length <= 1, 'one node drains at a time; the others keep serving and take its hand-off');
      for (const d of p.drain) {
        const peers = (w.list('Pod') as ObservedPod[]).filter((x) => x.metadata.name !== d.pod && x.metadata.labels?.['mailcluster.io/role'] === 'serving');
        assert.ok(peers.length > 0 || held.get(d.pod) === 0, `${d.pod} asked to drain with no peer only once its queue is empty`);
      }
      for (const d of p.delete) {
        if (d.kind !== 'PersistentVolumeClaim') continue;
        const pod = d.name.replace(/-spool$/, '');
        const q = w.queues[pod];
        assert.ok(q && 'total' in q && q.drained === true && q.total === 0 && held.get(pod) === 0, `${d.name} deleted only after ${pod} said drained`);
        order.push(d.name);
      }
      if (p.status) {
        const c = (type: string) => p.status!.conditions!.find((x) => x.type === type)!;
        assert.deepEqual([c('Ready').status, c('Ready').reason, c('Progressing').status, c('Progressing').reason], ['False', 'Deleting', 'True', 'Deleting']);
      }
      released = p.finalizers;
      w.apply(p);
    }
    assert.deepEqual(order, ['mc-2-spool', 'mc-1-spool', 'mc-0-spool']);
    assert.deepEqual(released, []);
    assert.deepEqual(names(w.list('Pod')), []);
    assert.deepEqual(names(w.list('PersistentVolumeClaim')), []);
    assert.equal([...held.values()].reduce((a, b) => a + b, 0), 0, 'all 9 messages handed off or delivered');
  });

  it('Delete, deleted before the finalizer was added: nothing holds it, the claims are retained', () => {
    const w = converged(new World(mailCluster({ replicas: 2, storage: { retentionPolicy: { whenDeleted: 'Delete' } } })));
    deleting(w);
    const p = plan(w.observed());
    assert.ok(isEmptyPlan(p));
    assert.equal(p.finalizers, undefined);
  });

  it('finds claims by cluster label (no owner needed) and maps their events to the MailCluster', () => {
    const claim = (labels: Record<string, string>, owners?: KObject['metadata']['ownerReferences']): KObject =>
      ({ metadata: { name: 'mc-0-spool', namespace: 'mail', labels, ...(owners ? { ownerReferences: owners } : {}) } });
    const ours = spoolClaimsOf('mc');
    assert.ok(ours(claim({ 'mailcluster.io/cluster': 'mc' })));
    assert.ok(ours(claim({ 'mailcluster.io/cluster': 'mc' }, [{ kind: 'MailCluster', uid: 'old', controller: true }])));
    assert.ok(!ours(claim({ 'mailcluster.io/cluster': 'other' })));
    assert.ok(!ours(claim({ 'mailcluster.io/cluster': 'mc' }, [{ kind: 'StatefulSet', uid: 'x', controller: true }])));
    assert.equal(ownerKey('PersistentVolumeClaim', claim({ 'mailcluster.io/cluster': 'mc' })), 'mail/mc');
    assert.equal(ownerKey('ConfigMap', claim({ 'mailcluster.io/cluster': 'mc' })), undefined, 'only claims go by label');
  });
});
