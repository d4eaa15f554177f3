import assert from 'node:assert/strict';
import { parseOperatorArgs } from '../../../operator/src/args.ts';
import { ownerKey, resyncDelay } from '../../../operator/src/controller/manager.ts';
import { parseQueue } from '../../../operator/src/controller/node-admin.ts';
import { describeError } from '../../../operator/src/controller/reconciler.ts';

describe('operator command line and small helpers', () => {
  it('parses the documented flags', () => {
    const a = parseOperatorArgs(['--kubeconfig', '/tmp/kc', '--namespace', 'a', '--namespace=b', '--leader-elect',
      '--leader-election-namespace', 'ops', '--metrics-address', '127.0.0.1:0', '--leader-election-lease-duration', '3s']);
    assert.equal(a.kubeconfig, '/tmp/kc');
    assert.deepEqual(a.namespaces, ['a', 'b']);
    assert.equal(a.leaderElect, true);
    assert.equal(a.leaderElectionNamespace, 'ops');
    assert.equal(a.metricsAddress, '127.0.0.1:0');
    assert.equal(a.leaseDurationMs, 3000);
  });

  it('defaults: all namespaces, no election, metrics on 127.0.0.1:8080', () => {
    const a = parseOperatorArgs([]);
    assert.deepEqual(a.namespaces, []);
    assert.equal(a.leaderElect, false);
    assert.equal(a.metricsAddress, '127.0.0.1:8080');
    assert.equal(parseOperatorArgs(['--metrics-address', '0']).metricsAddress, undefined);
  });

  it('--max-concurrent-rollouts: default 3, a whole number of clusters, at least 1', () => {
    assert.equal(parseOperatorArgs([]).maxConcurrentRollouts, 3);
    assert.equal(parseOperatorArgs(['--max-concurrent-rollouts', '10']).maxConcurrentRollouts, 10);
    assert.equal(parseOperatorArgs(['--max-concurrent-rollouts=1']).maxConcurrentRollouts, 1);
    for (const bad of ['0', '-1', '2.5', 'many', '']) assert.throws(() => parseOperatorArgs([`--max-concurrent-rollouts=${bad}`]), /--max-concurrent-rollouts/);
  });

  it('--workers: default 8, a whole number from 1', () => {
    assert.equal(parseOperatorArgs([]).workers, 8);
    assert.equal(parseOperatorArgs(['--workers', '16']).workers, 16);
    assert.equal(parseOperatorArgs(['--workers=1']).workers, 1);
    for (const bad of ['0', '-1', '2.5', 'many', '', '10000']) assert.throws(() => parseOperatorArgs([`--workers=${bad}`]), /--workers/);
  });

  it('spreads the Secret resync of converged clusters over a quarter period after it is due', () => {
    assert.equal(resyncDelay(600_000, () => 0), 600_000);
    assert.equal(resyncDelay(600_000, () => 0.999999), 749_999);
    const delays = Array.from({ length: 1000 }, () => resyncDelay(600_000));
    assert.ok(delays.every((d) => d >= 600_000 && d < 750_000));
    assert.ok(new Set(delays.map((d) => Math.floor(d / 15_000))).size === 10, 'spread over every tenth of the window');
  });

  it('rejects bad input with a clear message', () => {
    assert.throws(() => parseOperatorArgs(['--bogus']), /unknown flag "--bogus"/);
    assert.throws(() => parseOperatorArgs(['--kubeconfig']), /--kubeconfig needs a value/);
    assert.throws(() => parseOperatorArgs(['--namespace', 'Not_OK']), /not a namespace name/);
    assert.throws(() => parseOperatorArgs(['--leader-election-lease-duration', 'soon']), /expected a duration/);
  });

  it('maps children to their MailCluster through the controller ownerReference', () => {
    assert.equal(ownerKey('MailCluster', { metadata: { name: 'mc', namespace: 'n' } }), 'n/mc');
    assert.equal(ownerKey('Pod', { metadata: { name: 'mc-0', namespace: 'n', ownerReferences: [{ kind: 'MailCluster', name: 'mc', controller: true, uid: 'u' }] } }), 'n/mc');
    assert.equal(ownerKey('Pod', { metadata: { name: 'x', namespace: 'n', ownerReferences: [{ kind: 'ReplicaSet', name: 'rs', controller: true }] } }), undefined);
  });

  it('reads the queue size a node reports, and nothing else', () => {
    assert.equal(parseQueue({ total: 0, domains: {} }), 0);
    assert.equal(parseQueue({ total: 12 }), 12);
    assert.equal(parseQueue({ count: 3 }), undefined);
    assert.equal(parseQueue('12'), undefined);
    assert.equal(parseQueue({ total: -1 }), undefined);
  });

  it('describes API errors by their Status message', () => {
    const err = Object.assign(new Error('HTTP-Code: 422'), { code: 422, body: JSON.stringify({ message: 'spec.replicas: Invalid value' }) });
    assert.equal(describeError(err), 'spec.replicas: Invalid value');
    assert.equal(describeError(new Error('boom')), 'boom');
  });
});

describe('operator kubeconfig and watch paths', () => {
  it('uses the in-cluster config under MAILCLUSTER_ROOT, with KUBERNETES_SERVICE_HOST/PORT', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadKubeConfig } = await import('../../../operator/src/main.ts');
    const root = mkdtempSync(join(tmpdir(), 'op-incluster-'));
    const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'tok');
    writeFileSync(join(sa, 'ca.crt'), 'ca');
    writeFileSync(join(sa, 'namespace'), 'mail-system');
    const saved = { ...process.env };
    try {
      process.env.KUBERNETES_SERVICE_HOST = '127.0.0.9';
      process.env.KUBERNETES_SERVICE_PORT = '6443';
      process.env.MAILCLUSTER_ROOT = root;
      const kc = loadKubeConfig(undefined);
      assert.equal(kc.getCurrentCluster()?.server, 'https://127.0.0.9:6443');
      assert.equal(kc.getCurrentCluster()?.caFile, join(sa, 'ca.crt'));
      assert.equal(kc.getContextObject(kc.getCurrentContext())?.namespace, 'mail-system');
    } finally {
      for (const k of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'MAILCLUSTER_ROOT']) {
        if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
      }
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('watches collections cluster-wide or per namespace', async () => {
    const { collectionPath, WATCHED_KINDS } = await import('../../../operator/src/controller/informers.ts');
    const byKind = Object.fromEntries(WATCHED_KINDS.map((k) => [k.kind, k]));
    assert.equal(collectionPath(byKind.Pod), '/api/v1/pods');
    assert.equal(collectionPath(byKind.PodDisruptionBudget, 'mail'), '/apis/policy/v1/namespaces/mail/poddisruptionbudgets');
    assert.equal(collectionPath(byKind.MailCluster, 'mail'), '/apis/mailcluster.io/v1alpha1/namespaces/mail/mailclusters');
    assert.deepEqual(WATCHED_KINDS.filter((k) => !k.managedOnly).map((k) => k.kind), ['MailCluster'], 'children are watched by label only');
  });
});
