// Each node's own ServiceAccount, Role and RoleBinding (read its own ConfigMap and nothing else),
// and that every pod the planner creates names an account that exists or the same plan writes
// first. They are watched: a settled cluster writes none of them; one deleted by hand comes back.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { plan } from '../../../operator/src/controller/plan.ts';
import { withDefaults } from '../../../operator/src/api/v1alpha1/defaults.ts';
import { buildNodeAccess } from '../../../operator/src/resources/node-access.ts';
import { buildPod } from '../../../operator/src/resources/pod.ts';
import { convergedWorld, mailCluster, names, World } from './fixtures.ts';

describe('node access: a node reads its own ConfigMap through the API server, nothing else', () => {
  it('ServiceAccount, Role and RoleBinding <name>-<i>-node: one rule, get/list/watch on ConfigMap <name>-<i>-config by name', () => {
    const cluster = mailCluster();
    const [sa, role, binding] = buildNodeAccess(cluster, 3) as any[];
    for (const o of [sa, role, binding]) {
      assert.equal(o.metadata.name, 'mc-3-node');
      assert.equal(o.metadata.namespace, 'mail');
      assert.equal(o.metadata.ownerReferences[0].kind, 'MailCluster');
      assert.equal(o.metadata.labels['app.kubernetes.io/managed-by'], 'mailcluster-operator');
      assert.equal(o.metadata.labels['mailcluster.io/index'], '3');
    }
    assert.equal(sa.kind, 'ServiceAccount');
    assert.equal(sa.automountServiceAccountToken, false, 'only the pod that asks for it gets a token');
    assert.equal(role.kind, 'Role');
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['mc-3-config'], verbs: ['get', 'list', 'watch'] }]);
    assert.equal(binding.kind, 'RoleBinding');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'mc-3-node' });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'mc-3-node', namespace: 'mail' }]);
  });

  it('the pod runs as that account with its token mounted, and is told its ConfigMap', () => {
    const cluster = mailCluster();
    const pod = buildPod(cluster, withDefaults(cluster.spec), 2) as any;
    assert.equal(pod.spec.serviceAccountName, 'mc-2-node');
    assert.equal(pod.spec.automountServiceAccountToken, true);
    assert.deepEqual(pod.spec.containers[0].env, [{ name: 'MAILCLUSTER_CONFIGMAP', value: 'mc-2-config' }]);
  });

  it('every pod a plan creates (scale-up, scale-down, a claim brought back to drain) has its account in the same plan', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 6 }), (counts) => {
      const w = new World(mailCluster({ replicas: counts[0] }));
      for (const replicas of counts) {
        w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, replicas } };
        for (let step = 0; step < 12; step++) {
          const p = plan(w.observed());
          // planned now, or there already (watched: applied only when missing or changed)
          const there = (kind: string) => new Set([...p.apply.filter((o) => o.kind === kind), ...w.list(kind)].map((o) => o.metadata.name));
          const accounts = there('ServiceAccount');
          const roles = there('Role');
          const bindings = there('RoleBinding');
          for (const pod of p.apply.filter((o) => o.kind === 'Pod') as any[]) {
            const sa = pod.spec.serviceAccountName;
            assert.ok(accounts.has(sa) && roles.has(sa) && bindings.has(sa), `${pod.metadata.name}: ${sa} planned`);
          }
          w.apply(p);
          w.runAll();
          for (const pod of w.list('Pod')) if (pod.metadata.labels?.['mailcluster.io/role'] === 'draining') w.report(pod.metadata.name, 0);
        }
      }
    }), { numRuns: 40 });
  });
  it('watched: a settled cluster plans no account, Role or RoleBinding write; one deleted or changed by hand is applied again', () => {
    const w = convergedWorld(3);
    const access = (p: ReturnType<typeof plan>) => [...p.apply, ...p.unwatched].filter((o) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind!));
    assert.deepEqual(access(plan(w.observed())), []);
    assert.deepEqual(names(w.list('RoleBinding')), ['mc-0-node', 'mc-1-node', 'mc-2-node']);
    w.objects.delete('Role/mc-1-node');
    (w.get('RoleBinding', 'mc-2-node') as any).subjects = [{ kind: 'ServiceAccount', name: 'someone-else', namespace: 'mail' }];
    const p = plan(w.observed());
    assert.deepEqual(access(p).map((o) => `${o.kind}/${o.metadata.name}`).sort(), ['Role/mc-1-node', 'RoleBinding/mc-2-node']);
    w.apply(p);
    assert.deepEqual(access(plan(w.observed())), []);
  });
});
