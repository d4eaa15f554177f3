// The shared test cluster (test/support/local-cluster.ts): one per mocha run, with pods in
// 127.40.0.0/16, stopped by the run's teardown. In a full run the operator suites reuse it.
import assert from 'node:assert/strict';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { sharedLocalCluster } from '../../support/local-cluster.ts';
import { cidrContains, parseCidr } from '../../../local/src/agent/address-range.ts';

describe('shared local cluster for the e2e suites', function () {
  this.timeout(900_000); // the first suite to ask may wait for a cold control-plane build

  it('is started once per run and runs a pod from the pod range', async () => {
    const [a, b] = await Promise.all([sharedLocalCluster(), sharedLocalCluster()]);
    assert.equal(a, b, 'one cluster per run');
    const { stdout } = await a.kubectl(['get', 'node', 'local-node', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
    assert.equal(stdout, 'True');
    const core = a.kubeConfig.makeApiClient(CoreV1Api);
    const name = `shared-check-${process.pid}`;
    await core.createNamespacedPod({
      namespace: 'default',
      body: { metadata: { name }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'mailcluster/host', command: ['sleep', '600'] }] } },
    });
    try {
      const deadline = Date.now() + 30_000;
      let ip: string | undefined;
      while (!ip && Date.now() < deadline) {
        const pod = await core.readNamespacedPod({ name, namespace: 'default' });
        if (pod.status?.phase === 'Running') ip = pod.status.podIP;
        else await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(ip && cidrContains(parseCidr('127.40.0.0/16'), ip), `pod IP ${ip} in 127.40.0.0/16`);
    } finally {
      await core.deleteNamespacedPod({ name, namespace: 'default' });
    }
  });

  it('a status patch of a deleted pod (its UID as the precondition, as the agent sends it) never lands on a new pod of the same name', async () => {
    const cluster = await sharedLocalCluster();
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const name = `same-name-${process.pid}`;
    const body: V1Pod = { metadata: { name }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'mailcluster/host', command: ['sleep', '600'] }] } };
    const running = async (): Promise<V1Pod> => {
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        const pod = await core.readNamespacedPod({ name, namespace: 'default' });
        if (pod.status?.phase === 'Running') return pod;
      }
      throw new Error(`${name} not Running within 30 s`);
    };
    await core.createNamespacedPod({ namespace: 'default', body });
    try {
      const first = await running();
      await core.deleteNamespacedPod({ name, namespace: 'default' });
      for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 100))) {
        const gone = await core.readNamespacedPod({ name, namespace: 'default' }).then(() => false, (e: { code?: number }) => e.code === 404);
        if (gone) break;
        assert.ok(Date.now() < deadline, 'the first pod deleted within 30 s');
      }
      await core.createNamespacedPod({ namespace: 'default', body });
      const second = await running();
      assert.notEqual(second.metadata!.uid, first.metadata!.uid);
      // the first pod's last word, late: Succeeded
      const late = { metadata: { uid: first.metadata!.uid }, status: { phase: 'Succeeded' } };
      const refused = await core.patchNamespacedPodStatus({ name, namespace: 'default', body: late }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch))
        .then(() => undefined, (e: { code?: number }) => e.code);
      assert.ok(refused === 409 || refused === 422, `the API server refuses it (got ${refused})`);
      const now = await core.readNamespacedPod({ name, namespace: 'default' });
      assert.equal(now.metadata!.uid, second.metadata!.uid);
      assert.equal(now.status?.phase, 'Running', 'the new pod keeps running');
    } finally {
      await core.deleteNamespacedPod({ name, namespace: 'default', gracePeriodSeconds: 0 }).catch(() => {});
    }
  });
});
