// The shared test cluster (test/support/local-cluster.ts): one per mocha run, with pods in
// 127.40.0.0/16, stopped by the run's teardown. In a full run the operator suites reuse it.
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
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
});
