// The operator's behaviour under load, as pure decisions: the leader's one-write renewal, the
// informer cache without managedFields, and which Secret write goes first.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
// The very function the informer runs on every watch event and relist ("exported for testing").
import { addOrUpdateObject } from '@kubernetes/client-node/dist/cache.js';
import { renewedLease } from '../../../operator/src/controller/leader.ts';
import { trimForCache, trimPodForCache } from '../../../operator/src/controller/informers.ts';
import { plan } from '../../../operator/src/controller/plan.ts';
import type { ObservedPod } from '../../../operator/src/controller/observed.ts';
import { convergedWorld, type World } from './fixtures.ts';
import { firstSecretVerb, needsWrite } from '../../../operator/src/controller/secret-writer.ts';

describe('operator under load: pure decisions', () => {
  describe('renewedLease (the leader renews with one write)', () => {
    const held: V1Lease = {
      metadata: { name: 'mailcluster-operator', namespace: 'ns', resourceVersion: '42' },
      spec: { holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: new V1MicroTime(1000), renewTime: new V1MicroTime(2000), leaseTransitions: 3 },
    };

    it('keeps the resourceVersion, holder, acquire time and transitions; moves only the renew time', () => {
      const now = new V1MicroTime(5000);
      const r = renewedLease(held, 'me', now, 15)!;
      assert.equal(r.metadata?.resourceVersion, '42'); // a write by anyone else since makes ours 409
      assert.equal(r.spec?.holderIdentity, 'me');
      assert.equal(r.spec?.leaseTransitions, 3);
      assert.deepEqual(r.spec?.acquireTime, held.spec?.acquireTime);
      assert.equal(r.spec?.renewTime, now);
      assert.deepEqual(held.spec?.renewTime, new V1MicroTime(2000), 'the remembered lease is not changed');
    });

    it('never renews what it does not hold or never wrote (the slow path reads first)', () => {
      fc.assert(fc.property(fc.option(fc.string(), { nil: undefined }), fc.option(fc.string(), { nil: undefined }), (holder, rv) => {
        const lease: V1Lease = { metadata: { name: 'l', ...(rv !== undefined ? { resourceVersion: rv } : {}) }, spec: { ...(holder !== undefined ? { holderIdentity: holder } : {}) } };
        const r = renewedLease(lease, 'me', new V1MicroTime(1), 15);
        assert.equal(r !== undefined, holder === 'me' && !!rv);
      }));
      assert.equal(renewedLease(undefined, 'me', new V1MicroTime(1), 15), undefined);
    });
  });

  describe('trimForCache (no managedFields in the informer cache)', () => {
    it('the cached object, which is the one handlers get, loses managedFields and keeps the rest', () => {
      const objects = new Map<string, Map<string, unknown>>();
      const pod = {
        metadata: { name: 'p', namespace: 'n', resourceVersion: '1', labels: { a: 'b' }, managedFields: [{ manager: 'kubelet', fieldsV1: { 'f:status': {} } }] },
        status: { phase: 'Running' },
      };
      // as the informer does: handlers in registration order, trimForCache first
      addOrUpdateObject(objects as never, pod as never, [trimForCache as never], []);
      const cached = objects.get('n')!.get('p') as typeof pod;
      assert.equal(cached.metadata.managedFields, undefined);
      assert.deepEqual(cached.metadata.labels, { a: 'b' });
      assert.equal(cached.status.phase, 'Running');
      assert.doesNotThrow(() => trimForCache({}));
    });
  });

  describe('trimPodForCache (pods keep only what the planner reads)', () => {
    /** A pod as a kubelet reports it: the operator's spec with what the API server adds, a full status. */
    const fat = (p: ObservedPod): ObservedPod => {
      const pod = structuredClone(p) as any;
      pod.metadata.managedFields = [{ manager: 'kubelet', fieldsV1: { 'f:status': {} } }];
      pod.spec.volumes = [...(pod.spec.volumes ?? []), { name: 'kube-api-access-x1', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }];
      pod.spec.tolerations = [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }];
      pod.spec.nodeName = 'node-1';
      if (pod.status) {
        pod.status = {
          ...pod.status, hostIP: '10.0.0.1', hostIPs: [{ ip: '10.0.0.1' }], podIPs: pod.status.podIP ? [{ ip: pod.status.podIP }] : [], qosClass: 'Burstable', startTime: '2026-01-01T00:00:00Z',
          conditions: (pod.status.conditions ?? []).map((c: any) => ({ ...c, lastProbeTime: null, lastTransitionTime: '2026-01-01T00:00:00Z' })),
          containerStatuses: (pod.status.containerStatuses ?? []).map((c: any) => ({ ...c, name: 'node', image: 'mailcluster/node:0.1.0', imageID: 'sha256:abc', containerID: 'containerd://x', started: true, lastState: {} })),
        };
      }
      return pod;
    };
    const withPods = (w: World, f: (p: ObservedPod) => ObservedPod) => ({ ...w.observed(), pods: w.observed().pods.map(f) });
    const scenarios: Array<[string, (w: World) => void]> = [
      ['converged', () => {}],
      ['a pod not ready', (w) => { const p = w.get('Pod', 'mc-1') as any; p.status.conditions = [{ type: 'Ready', status: 'False' }]; }],
      ['a pod crash-looping', (w) => { const p = w.get('Pod', 'mc-2') as any; p.status.containerStatuses = [{ ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off' } } }]; }],
      ['scale down, drained', (w) => { w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 2 } }; w.apply(plan(w.observed())); w.report('mc-2', 0); }],
      ['a new image', (w) => { w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, image: 'mailcluster/node:0.2.0' }, metadata: { ...w.cluster.metadata, generation: 2 } }; }],
    ];
    for (const [what, make] of scenarios) {
      it(`plans the same from trimmed pods as from whole ones: ${what}`, () => {
        const w = convergedWorld();
        make(w);
        const whole = withPods(w, fat);
        const trimmed = withPods(w, (p) => trimPodForCache(fat(p)));
        assert.deepEqual(plan(trimmed), plan(whole));
        for (const p of trimmed.pods) {
          assert.equal(Object.keys(p.spec ?? {}).join(), 'volumes');
          assert.deepEqual(p.spec?.volumes?.map((v) => v.persistentVolumeClaim?.claimName), [`${p.metadata.name}-spool`]);
          assert.equal((p as any).metadata.managedFields, undefined);
        }
      });
    }
  });

  describe('firstSecretVerb (no update answered 404 before a create the operator knew it had to make)', () => {
    it('create first only for a Secret never written by this process of a cluster with nothing yet', () => {
      assert.equal(firstSecretVerb(undefined, true), 'create');
      assert.equal(firstSecretVerb(undefined, false), 'update'); // restarted operator, existing cluster
      fc.assert(fc.property(fc.string(), fc.nat(), fc.boolean(), (hash, at, likelyAbsent) => {
        assert.equal(firstSecretVerb({ hash, at }, likelyAbsent), 'update');
      }));
    });

    it('what decides whether to write at all is unchanged', () => {
      assert.equal(needsWrite(undefined, 'h', 0), true);
      assert.equal(needsWrite({ hash: 'h', at: 0 }, 'h', 1), false);
    });
  });
});
