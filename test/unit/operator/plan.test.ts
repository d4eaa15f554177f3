import assert from 'node:assert/strict';
import fc from 'fast-check';
import { plan, POLL_MS } from '../../../operator/src/controller/plan.ts';
import type { ObservedPod } from '../../../operator/src/controller/observed.ts';
import { convergedWorld, isEmptyPlan, mailCluster, names, NOW, World } from './fixtures.ts';

/** A fresh 3-node cluster, converged: pods running and ready, config and status written. */
const cm = (w: World, i: number): string => (w.get('ConfigMap', `mc-${i}-config`) as any).data['smtpserver.conf'];
const zm = (w: World, i: number): string => (w.get('ConfigMap', `mc-${i}-config`) as any).data['zmailer.conf'];
const etrnPeers = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('PARAM etrn-cluster')).map((l) => l.split(' ')[2]);
const condition = (w: World, type: string) => w.cluster.status?.conditions?.find((c) => c.type === type);
const seconds = (n: number): Date => new Date(NOW.getTime() + n * 1000);

describe('operator planner', () => {
  it('creates every child of a new cluster, all pods in one step', () => {
    const w = new World(mailCluster());
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'Pod'), ['mc-0', 'mc-1', 'mc-2']);
    assert.deepEqual(names(p.apply, 'PersistentVolumeClaim'), ['mc-0-spool', 'mc-1-spool', 'mc-2-spool']);
    assert.deepEqual(names(p.apply, 'ConfigMap'), ['mc-0-config', 'mc-1-config', 'mc-2-config']);
    assert.deepEqual(names(p.apply, 'Secret'), [], 'Secrets are written whole by the controller, not applied');
    assert.deepEqual(names(p.secrets), ['mc-admin', 'mc-mailq']);
    assert.deepEqual(names(p.apply, 'Service'), ['mc', 'mc-peers']);
    assert.deepEqual(names(p.apply, 'PodDisruptionBudget'), ['mc']);
    assert.deepEqual(names(p.apply, 'NetworkPolicy'), ['mc']);
    for (const obj of [...p.apply, ...p.secrets]) {
      assert.equal(obj.metadata.namespace, 'mail');
      if (obj.kind === 'PersistentVolumeClaim') { assert.equal(obj.metadata.ownerReferences, undefined, 'spool claims have no owner'); continue; }
      assert.deepEqual(obj.metadata.ownerReferences, [{ apiVersion: 'mailcluster.io/v1alpha1', kind: 'MailCluster', name: 'mc', uid: 'uid-1234', controller: true, blockOwnerDeletion: true }]);
      assert.equal(obj.metadata.labels?.['app.kubernetes.io/managed-by'], 'mailcluster-operator');
    }
    assert.equal(p.status?.conditions?.find((c) => c.type === 'Progressing')?.reason, 'ScalingUp');
    assert.equal(p.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
  });

  it('lists every pod, itself included, once the pods have addresses', () => {
    const w = convergedWorld();
    for (const i of [0, 1, 2]) {
      assert.deepEqual(etrnPeers(cm(w, i)), ['127.40.0.10/1174', '127.40.0.11/1174', '127.40.0.12/1174']);
      const self = zm(w, i).split('\n').find((l) => l.startsWith('SELFADDRESSES='))!.slice('SELFADDRESSES='.length).split(',');
      for (const a of ['127.40.0.10', '127.40.0.11', '127.40.0.12', '10.96.0.10', '127.41.0.1', 'smtp.isp.net', 'mc-2.mc-peers.mail.svc.cluster.local']) assert.ok(self.includes(a), `${a} in ${self}`);
    }
    assert.equal(condition(w, 'Ready')?.status, 'True');
    assert.equal(condition(w, 'Progressing')?.status, 'False');
    assert.equal(condition(w, 'Degraded')?.status, 'False');
    assert.equal(w.cluster.status?.readyReplicas, 3);
    assert.equal(w.cluster.status?.replicas, 3);
    assert.equal(w.cluster.status?.address, '127.41.0.1');
    assert.equal(w.cluster.status?.selector, 'app.kubernetes.io/instance=mc,app.kubernetes.io/name=mailcluster-node');
    assert.deepEqual(w.cluster.status?.peers, ['127.40.0.10/1174', '127.40.0.11/1174', '127.40.0.12/1174']);
    assert.equal(w.cluster.status?.observedGeneration, 1);
  });

  it('plans nothing at all for a converged cluster, even an hour later', () => {
    const w = convergedWorld();
    w.now = seconds(3600);
    const p = plan(w.observed());
    assert.ok(isEmptyPlan(p), JSON.stringify(p, null, 1).slice(0, 2000));
    assert.equal(p.requeueAfterMs, undefined);
  });

  it('plans nothing for objects as a list returns them (no apiVersion/kind per item)', () => {
    const w = convergedWorld();
    for (const o of w.objects.values()) { delete o.apiVersion; delete o.kind; }
    const observed = w.observed();
    observed.pods = [...w.objects.entries()].filter(([k]) => k.startsWith('Pod/')).map(([, o]) => o);
    observed.configMaps = [...w.objects.entries()].filter(([k]) => k.startsWith('ConfigMap/')).map(([, o]) => o);
    observed.services = [...w.objects.entries()].filter(([k]) => k.startsWith('Service/')).map(([, o]) => o);
    observed.networkPolicies = [...w.objects.entries()].filter(([k]) => k.startsWith('NetworkPolicy/')).map(([, o]) => o);
    observed.claims = [...w.objects.entries()].filter(([k]) => k.startsWith('PersistentVolumeClaim/')).map(([, o]) => o);
    observed.podDisruptionBudgets = [...w.objects.entries()].filter(([k]) => k.startsWith('PodDisruptionBudget/')).map(([, o]) => o);
    for (const kind of ['ServiceAccount', 'Role', 'RoleBinding'] as const) observed.nodeAccess[kind] = [...w.objects.entries()].filter(([k]) => k.startsWith(`${kind}/`)).map(([, o]) => o);
    assert.ok(isEmptyPlan(plan(observed)), JSON.stringify(plan(observed).apply.map((o) => o.metadata.name)));
  });

  it('renders byte-identical configuration whatever order the informers list objects in', () => {
    const w = convergedWorld();
    const observed = w.observed();
    observed.pods = [...observed.pods].reverse();
    observed.configMaps = [...observed.configMaps].reverse();
    assert.ok(isEmptyPlan(plan(observed)));
  });

  it('plans the same Secrets again for a converged cluster (the controller skips unchanged ones) and applies none', () => {
    const w = convergedWorld();
    const before = structuredClone(w.get('Secret', 'mc-mailq'));
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'Secret'), []);
    assert.deepEqual(names(p.secrets), ['mc-admin', 'mc-mailq']);
    assert.deepEqual(p.secrets.find((s) => s.metadata.name === 'mc-mailq'), before);
    assert.deepEqual(p.createOnce, [{ name: 'mc-peer-tls', dnsName: 'mc-peers.mail.svc' }]);
  });

  it('lets the ETRN user in from exactly the live pod addresses, rewritten on scale-up and scale-down', () => {
    const w = convergedWorld();
    const acl = () => Buffer.from((w.get('Secret', 'mc-mailq') as any).data['scheduler.auth'], 'base64').toString().trim().split(':').slice(3).join(':');
    assert.equal(acl(), '[127.40.0.10]/32 [127.40.0.11]/32 [127.40.0.12]/32');
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 4 }, metadata: { ...w.cluster.metadata, generation: 2 } };
    w.apply(plan(w.observed()));
    assert.equal(acl(), '[127.40.0.10]/32 [127.40.0.11]/32 [127.40.0.12]/32', 'a pod without an address adds nothing');
    w.runAll();
    w.apply(plan(w.observed()));
    assert.equal(acl(), '[127.40.0.10]/32 [127.40.0.11]/32 [127.40.0.12]/32 [127.40.0.13]/32');
    // Scale down: the drained pod is deleted and leaves the ACL in the same pass.
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 3 }, metadata: { ...w.cluster.metadata, generation: 3 } };
    w.apply(plan(w.observed()));
    w.report('mc-3', 0);
    w.apply(plan(w.observed()));
    assert.equal(w.get('Pod', 'mc-3'), undefined);
    assert.equal(acl(), '[127.40.0.10]/32 [127.40.0.11]/32 [127.40.0.12]/32');
  });

  it('scales up by creating the new pods in parallel, touching no existing pod', () => {
    const w = convergedWorld();
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 5 }, metadata: { ...w.cluster.metadata, generation: 2 } };
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'Pod'), ['mc-3', 'mc-4']);
    assert.deepEqual(p.patchPods, []);
    assert.deepEqual(p.delete, []);
    w.apply(p);
    w.runAll();
    w.apply(plan(w.observed()));
    for (const i of [0, 1, 2, 3, 4]) assert.equal(etrnPeers(cm(w, i)).length, 5);
    assert.ok(isEmptyPlan(plan(w.observed())));
    assert.equal(w.cluster.status?.observedGeneration, 2);
  });

  it('rewrites only the ConfigMaps when a pod comes back with a new address', () => {
    const w = convergedWorld();
    w.objects.delete('Pod/mc-1');
    let p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'Pod'), ['mc-1']);
    assert.deepEqual(names(p.apply, 'PersistentVolumeClaim'), [], 'the spool claim is kept');
    w.apply(p);
    w.run('mc-1', '127.40.0.99');
    p = plan(w.observed());
    assert.deepEqual(names(p.apply), ['mc-0-config', 'mc-1-config', 'mc-2-config']);
    assert.deepEqual(p.patchPods, []);
    assert.deepEqual(p.delete, []);
    assert.ok(p.events.some((e) => e.reason === 'Reconfigured'));
    w.apply(p);
    assert.deepEqual(etrnPeers(cm(w, 0)), ['127.40.0.10/1174', '127.40.0.99/1174', '127.40.0.12/1174']);
    assert.ok(!zm(w, 2).includes('127.40.0.11,'), 'the old address is gone');
  });

  it('leaves the ConfigMap of a pod without an address as it is until the pod has one, then writes it whole', () => {
    const w = new World(mailCluster());
    w.apply(plan(w.observed()));
    const first = cm(w, 2);
    // The Service's cluster IP and the load balancer address arrive while no pod has an address.
    w.setLoadBalancer('127.41.0.1');
    let p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'ConfigMap'), [], 'no node runs yet: nothing to rewrite');
    w.apply(p);
    w.run('mc-0', '127.40.0.10');
    p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'ConfigMap'), ['mc-0-config'], 'only the node that runs');
    w.apply(p);
    assert.equal(cm(w, 2), first, 'mc-2 has no address: its ConfigMap is not rewritten');
    w.run('mc-2', '127.40.0.12');
    p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'ConfigMap'), ['mc-0-config', 'mc-2-config']);
    w.apply(p);
    assert.match(zm(w, 2), /127\.41\.0\.1/, 'the address it missed is there once it runs');
    assert.deepEqual(etrnPeers(cm(w, 2)), ['127.40.0.10/1174', '127.40.0.12/1174']);
    w.run('mc-1', '127.40.0.11');
    w.apply(plan(w.observed()));
    for (const i of [0, 1, 2]) assert.deepEqual(etrnPeers(cm(w, i)), ['127.40.0.10/1174', '127.40.0.11/1174', '127.40.0.12/1174']);
    assert.ok(isEmptyPlan(plan(w.observed())));
  });

  it('counts a pod Ready without an address as not ready yet: it is in no peer list', () => {
    const w = new World(mailCluster());
    w.apply(plan(w.observed()));
    w.runAll();
    const pod = w.get('Pod', 'mc-1') as ObservedPod;
    pod.status = { ...pod.status, podIP: undefined };
    w.apply(plan(w.observed()));
    assert.equal(w.cluster.status?.readyReplicas, 2);
    assert.equal(condition(w, 'Ready')?.status, 'False');
    w.run('mc-1', '127.40.0.11');
    w.apply(plan(w.observed()));
    assert.equal(w.cluster.status?.readyReplicas, 3);
    assert.equal(condition(w, 'Ready')?.status, 'True');
    for (const i of [0, 1, 2]) assert.equal(etrnPeers(cm(w, i)).length, 3, 'Ready once every node lists every node');
  });

  it('property: whatever order pods get addresses and the load balancer its own, every running node ends with the whole list', () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(0, 1, 2, 3, 'lb' as const), { minLength: 5, maxLength: 12 }), fc.integer({ min: 1, max: 4 }), (events, replicas) => {
      const w = new World(mailCluster({ replicas }));
      w.apply(plan(w.observed()));
      let writes = 0;
      for (const e of events) {
        if (e === 'lb') w.setLoadBalancer('127.41.0.1');
        else if (e < replicas && !(w.get('Pod', `mc-${e}`) as ObservedPod).status?.podIP) w.run(`mc-${e}`, `127.40.0.${10 + e}`);
        const p = plan(w.observed());
        for (const o of p.apply.filter((x) => x.kind === 'ConfigMap')) {
          const i = Number(o.metadata.name.split('-')[1]);
          assert.ok((w.get('Pod', `mc-${i}`) as ObservedPod).status?.podIP, `${o.metadata.name} rewritten while its pod has no address`);
          writes++;
        }
        w.apply(p);
      }
      w.setLoadBalancer('127.41.0.1');
      w.runAll();
      w.apply(plan(w.observed()));
      const all = Array.from({ length: replicas }, (_, i) => `127.40.0.${10 + i}/1174`);
      for (let i = 0; i < replicas; i++) {
        assert.deepEqual(etrnPeers(cm(w, i)), all);
        assert.match(zm(w, i), /127\.41\.0\.1/);
      }
      assert.ok(isEmptyPlan(plan(w.observed())));
      assert.ok(writes <= replicas * (replicas + 1), `${writes} ConfigMap rewrites`);
    }));
  });

  it('rewrites the ConfigMaps when the load balancer address changes, without touching pods', () => {
    const w = convergedWorld();
    w.setLoadBalancer('127.41.0.7');
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply), ['mc-0-config', 'mc-1-config', 'mc-2-config']);
    assert.equal(p.status?.address, '127.41.0.7');
  });

  it('scales down: every excess node drains at once and leaves the peer lists at once; each pod and spool goes once it reported itself drained', () => {
    const w = convergedWorld(5);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 3 } };
    let p = plan(w.observed());
    assert.deepEqual(p.patchPods.map((x) => [x.name, x.labels]), [['mc-4', { 'mailcluster.io/role': 'draining' }], ['mc-3', { 'mailcluster.io/role': 'draining' }]], 'both excess nodes, together');
    assert.deepEqual(p.drain, [{ pod: 'mc-4', url: 'http://127.40.0.14:8025/drain' }, { pod: 'mc-3', url: 'http://127.40.0.13:8025/drain' }], 'asked to drain right after the relabel');
    assert.deepEqual(p.delete, []);
    assert.ok(p.events.some((e) => e.reason === 'Draining' && e.message.includes('mc-4')));
    assert.equal(p.status?.conditions?.find((c) => c.type === 'Progressing')?.reason, 'ScalingDown');
    // The nodes that stay serve the new peer list in this very pass; the draining ones stay
    // trusted for their hand-off (relay-network /32) and in SELFADDRESSES until they are gone.
    assert.deepEqual(names(p.apply, 'ConfigMap'), ['mc-0-config', 'mc-1-config', 'mc-2-config', 'mc-3-config', 'mc-4-config']);
    w.apply(p);
    for (const i of [0, 1, 2, 3, 4]) {
      assert.deepEqual(etrnPeers(cm(w, i)), ['127.40.0.10/1174', '127.40.0.11/1174', '127.40.0.12/1174'], `mc-${i}'s peers`);
      assert.deepEqual(cm(w, i).split('\n').filter((l) => l.startsWith('PARAM relay-network')), ['PARAM relay-network 127.40.0.13/32', 'PARAM relay-network 127.40.0.14/32']);
      assert.ok(zm(w, i).includes('127.40.0.13,') && zm(w, i).includes('127.40.0.14,'), 'still cluster addresses');
    }
    assert.deepEqual(w.cluster.status?.peers, ['127.40.0.10/1174', '127.40.0.11/1174', '127.40.0.12/1174']);

    w.queues = { 'mc-4': { total: 12 }, 'mc-3': { total: 3 } };
    p = plan(w.observed());
    assert.deepEqual(p.delete, [], 'mail still queued: keep them');
    assert.deepEqual(p.drain, [], 'drain already requested');
    assert.deepEqual(p.patchPods, []);
    assert.equal(p.requeueAfterMs, POLL_MS);

    w.queues = { 'mc-4': { total: 12, draining: false }, 'mc-3': { total: 3 } };
    assert.deepEqual(plan(w.observed()).drain.map((d) => d.pod), ['mc-4'], 'a node that forgot it drains (restart) is asked again');

    w.queues = { 'mc-4': { total: 0, draining: true }, 'mc-3': { total: 3 } };
    assert.deepEqual(plan(w.observed()).delete, [], 'an empty queue is not the node\'s word that it is drained');
    w.report('mc-4', 0, { drained: false });
    assert.deepEqual(plan(w.observed()).delete, [], 'drained: false (a session still open) keeps it');
    w.report('mc-4', 0);
    p = plan(w.observed());
    assert.deepEqual(p.delete, [
      { apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: 'mc-4-spool' },
      { apiVersion: 'v1', kind: 'Pod', name: 'mc-4' },
    ], 'only the node that reported itself drained; mc-3 still holds mail');
    assert.deepEqual(names(p.apply, 'ConfigMap'), ['mc-0-config', 'mc-1-config', 'mc-2-config', 'mc-3-config'], 'the others stop trusting its address at once');
    w.apply(p);
    for (const i of [0, 1, 2]) assert.deepEqual(cm(w, i).split('\n').filter((l) => l.startsWith('PARAM relay-network')), ['PARAM relay-network 127.40.0.13/32']);

    w.report('mc-3', 0);
    w.apply(plan(w.observed()));
    w.apply(plan(w.observed()));
    assert.deepEqual(names(w.list('Pod')), ['mc-0', 'mc-1', 'mc-2']);
    assert.deepEqual(names(w.list('PersistentVolumeClaim')), ['mc-0-spool', 'mc-1-spool', 'mc-2-spool']);
    assert.deepEqual(names(w.list('ConfigMap')), ['mc-0-config', 'mc-1-config', 'mc-2-config']);
    for (const i of [0, 1, 2]) {
      assert.equal(etrnPeers(cm(w, i)).length, 3);
      assert.ok(!cm(w, i).includes('relay-network'), 'no trust left for addresses gone');
    }
    assert.ok(isEmptyPlan(plan(w.observed())));
    assert.equal(condition(w, 'Ready')?.status, 'True');
  });

  it('never deletes a draining node that still holds mail after drainTimeout: Degraded DrainStalled', () => {
    const w = convergedWorld(4);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 3, drainTimeout: '30s' } };
    w.apply(plan(w.observed()));
    w.apply(plan(w.observed()));
    w.queues = { 'mc-3': { total: 4 } };
    w.now = seconds(31);
    const p = plan(w.observed());
    assert.deepEqual(p.delete, []);
    assert.ok(p.drain.some((d) => d.pod === 'mc-3'), 'asks again');
    assert.ok(p.events.some((e) => e.type === 'Warning' && e.reason === 'DrainStalled'));
    w.apply(p);
    assert.equal(condition(w, 'Degraded')?.status, 'True');
    assert.equal(condition(w, 'Degraded')?.reason, 'DrainStalled');
    w.queues = { 'mc-3': { error: 'connect ECONNREFUSED' } };
    assert.deepEqual(plan(w.observed()).delete, [], 'an unreachable node is not assumed empty');
  });

  it('rolls a new image one pod at a time, highest index first, draining each', () => {
    const w = convergedWorld();
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, image: 'mailcluster/node:0.2.0' }, metadata: { ...w.cluster.metadata, generation: 2 } };
    const rolled: string[] = [];
    for (let step = 0; step < 40 && rolled.length < 3; step++) {
      const p = plan(w.observed());
      const drainingNow = (w.list('Pod') as ObservedPod[]).filter((x) => x.metadata.labels?.['mailcluster.io/role'] === 'draining');
      assert.ok(drainingNow.length + p.patchPods.length <= 1, 'never more than one node out at a time');
      for (const d of p.delete) if (d.kind === 'Pod') rolled.push(d.name);
      assert.ok(!p.delete.some((d) => d.kind === 'PersistentVolumeClaim'), 'a rolled node keeps its spool');
      w.apply(p);
      for (const d of p.drain) w.queues[d.pod] = { total: 0 };
      w.runAll();
    }
    assert.deepEqual(rolled, ['mc-2', 'mc-1', 'mc-0']);
    for (const pod of w.list('Pod') as any[]) assert.equal(pod.spec.containers[0].image, 'mailcluster/node:0.2.0');
    w.apply(plan(w.observed()));
    w.runAll();
    w.apply(plan(w.observed()));
    assert.ok(isEmptyPlan(plan(w.observed())));
    assert.equal(condition(w, 'Progressing')?.reason, 'Converged');
  });

  it('waits for the rolled pod to be ready before rolling the next; replaces a not-ready pod at once', () => {
    const w = convergedWorld();
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, image: 'mailcluster/node:0.2.0' } };
    w.apply(plan(w.observed())); // mc-2 draining
    w.apply(plan(w.observed())); // drain requested
    w.queues = { 'mc-2': { total: 0 } };
    w.apply(plan(w.observed())); // mc-2 deleted
    w.apply(plan(w.observed())); // mc-2 created with the new template
    w.run('mc-2', '127.40.0.50', false);
    const waiting = plan(w.observed());
    assert.deepEqual(waiting.patchPods, [], 'mc-2 is not ready yet: mc-1 waits');
    assert.deepEqual(waiting.delete, []);
    w.run('mc-2', '127.40.0.50', true);
    w.run('mc-0', '127.40.0.10', false);
    const p = plan(w.observed());
    // mc-0 does not serve: it is replaced without a drain (its spool stays), before mc-1.
    assert.deepEqual(p.delete, [{ apiVersion: 'v1', kind: 'Pod', name: 'mc-0' }]);
    assert.deepEqual(p.patchPods, []);
  });

  it('a spec the schema admits but that cannot work: a missing TLS Secret is Degraded and starts no pods', () => {
    const w = new World(mailCluster({ tls: { secretName: 'smtp-tls' } }));
    w.tlsSecret = 'missing';
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'Pod'), []);
    const degraded = p.status?.conditions?.find((c) => c.type === 'Degraded');
    assert.equal(degraded?.status, 'True');
    assert.equal(degraded?.reason, 'TLSSecretMissing');
    assert.match(degraded!.message, /smtp-tls/);
    assert.ok(p.requeueAfterMs! > 0);
    w.tlsSecret = 'ok';
    const q = plan(w.observed());
    assert.deepEqual(names(q.apply, 'Pod'), ['mc-0', 'mc-1', 'mc-2']);
    const pod = q.apply.find((o) => o.kind === 'Pod') as any;
    assert.ok(pod.spec.volumes.some((v: any) => v.secret?.secretName === 'smtp-tls'));
    assert.match((q.apply.find((o) => o.kind === 'ConfigMap') as any).data['smtpserver.conf'], /PARAM tls-cert-file \/etc\/mailcluster-tls\/tls.crt/);
  });

  it('reports failing pods as Degraded with the reason', () => {
    const w = convergedWorld();
    (w.get('Pod', 'mc-1') as ObservedPod).status!.containerStatuses = [{ ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff' } } }];
    const p = plan(w.observed());
    const degraded = p.status?.conditions?.find((c) => c.type === 'Degraded');
    assert.equal(degraded?.reason, 'NodesFailing');
    assert.match(degraded!.message, /mc-1: CrashLoopBackOff/);
  });

  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const w = convergedWorld();
    const before = condition(w, 'Ready')!.lastTransitionTime;
    w.now = seconds(60);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 4 }, metadata: { ...w.cluster.metadata, generation: 2 } };
    w.apply(plan(w.observed()));
    assert.notEqual(condition(w, 'Ready')!.lastTransitionTime, before, 'Ready went False');
    assert.equal(condition(w, 'Degraded')!.status, 'False');
    assert.equal(condition(w, 'Degraded')!.lastTransitionTime, '2026-11-29T12:00:00Z');
  });

  it('brings back an undrained node whose pod vanished during scale-down, as draining', () => {
    const w = convergedWorld(4);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas: 3 } };
    w.objects.delete('Pod/mc-3');
    const p = plan(w.observed());
    const pod = p.apply.find((o) => o.kind === 'Pod');
    assert.equal(pod?.metadata.name, 'mc-3');
    assert.equal(pod?.metadata.labels?.['mailcluster.io/role'], 'draining');
    assert.ok(!p.delete.some((d) => d.kind === 'PersistentVolumeClaim'));
  });

  it('waits for a spool claim that is still being deleted before recreating its pod', () => {
    const w = convergedWorld(3);
    w.objects.delete('Pod/mc-2');
    w.get('PersistentVolumeClaim', 'mc-2-spool')!.metadata.deletionTimestamp = NOW.toISOString();
    const p = plan(w.observed());
    assert.deepEqual(names(p.apply, 'Pod'), []);
    assert.equal(p.requeueAfterMs, POLL_MS);
    w.objects.delete('PersistentVolumeClaim/mc-2-spool');
    const q = plan(w.observed());
    assert.deepEqual(names(q.apply, 'Pod'), ['mc-2']);
    assert.deepEqual(names(q.apply, 'PersistentVolumeClaim'), ['mc-2-spool']);
  });

  it('does nothing for a cluster being deleted', () => {
    const w = convergedWorld();
    w.cluster = { ...w.cluster, metadata: { ...w.cluster.metadata, deletionTimestamp: NOW.toISOString() } };
    w.objects.delete('Pod/mc-0');
    assert.ok(isEmptyPlan(plan(w.observed())));
  });
});
