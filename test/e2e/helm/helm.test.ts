// The Helm chart on the shared local control plane: lint, server-side dry run, install (the
// operator runs as pods of the chart's Deployment, with the chart's ServiceAccount and RBAC,
// and reconciles a MailCluster), an HPA and `kubectl autoscale` driving that MailCluster through
// its scale subresource, upgrade, and uninstall (nothing of the operator left, CRD kept).
// The operator and mail pods run from the project's images on the real kubelet (root).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { ensureHelm, helmOk, runHelm, type Helm } from '../../../local/src/tools/helm.ts';
import { kubeletSuitesWanted, sharedLocalCluster } from '../../support/local-cluster.ts';
import { httpInside } from '../../support/inside.ts';
import { waitUntil } from '../../support/processes.ts';
import type { LocalCluster } from '../../../local/src/index.ts';

const chartDir = fileURLToPath(new URL('../../../helm/mailcluster-operator', import.meta.url));
const hpaExample = fileURLToPath(new URL('../../../examples/hpa.yaml', import.meta.url));
const CRD = 'mailclusters.mailcluster.io';

interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  status?: any;
}

(kubeletSuitesWanted() ? describe : describe.skip)('helm chart mailcluster-operator on local Kubernetes with a real kubelet (root)', function () {
  // The first suite to ask starts the shared cluster (and the first run builds helm).
  this.timeout(20 * 60_000);
  const suffix = randomBytes(3).toString('hex');
  const release = 'helm-e2e';
  const fullname = `${release}-mailcluster-operator`;
  const releaseNs = `helm-e2e-${suffix}`;
  const mcNs = `helm-e2e-mc-${suffix}`;
  const sa = `system:serviceaccount:${releaseNs}:${fullname}`;
  const instance = `app.kubernetes.io/instance=${release}`;
  let cluster: LocalCluster;
  let helm: Helm;
  let installed = false;

  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await cluster.kubectl(args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 })).stdout;
  const getJson = async <T = Obj>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
  const tryGetJson = async <T = Obj>(args: string[]): Promise<T | undefined> => {
    try {
      return await getJson<T>(args);
    } catch (err) {
      if (/NotFound|not found/.test((err as Error).message)) return undefined;
      throw err;
    }
  };
  /** `kubectl auth can-i … --as <the operator's ServiceAccount>`: exit 0 "yes", exit 1 "no". */
  const canI = (...args: string[]): Promise<boolean> => new Promise((resolve, reject) => {
    execFile(cluster.kubectlPath, ['auth', 'can-i', ...args, '--as', sa], { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 30_000 }, (err, stdout, stderr) => {
      const answer = stdout.trim();
      if (answer === 'yes' && !err) resolve(true);
      else if (answer.startsWith('no')) resolve(false);
      else reject(new Error(`kubectl auth can-i ${args.join(' ')}: ${err?.message ?? ''} ${stderr}`));
    });
  });
  /** Every [can-i arguments, expected answer] pair, asked in parallel; one failure lists all wrong answers. */
  const expectRights = async (cases: Array<[string[], boolean]>): Promise<void> => {
    const answers = await Promise.all(cases.map(([args]) => canI(...args)));
    const wrong = cases.filter(([, want], i) => answers[i] !== want).map(([args, want]) => `can-i ${args.join(' ')}: want ${want ? 'yes' : 'no'}`);
    assert.deepEqual(wrong, []);
  };
  const operatorPods = async () => (await getJson<{ items: Obj[] }>(['get', 'pods', '-n', releaseNs, '-l', `${instance},app.kubernetes.io/component=operator`])).items
    .filter((p) => !(p.metadata as { deletionTimestamp?: string }).deletionTimestamp);
  /** One sample of a metric from an operator pod's metrics port (through the node's gateway: pods are inside its namespace). */
  const podMetric = async (pod: Obj, name: string): Promise<number> => {
    const text = (await httpInside(cluster.kubeletNode!.dial, pod.status.podIP, 8080, '/metrics', { timeoutMs: 3000 })).body;
    let total = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (m && m[1] === name) total += Number(m[3]);
    }
    return total;
  };
  const condition = (obj: Obj, type: string) => (obj.status?.conditions as Array<{ type: string; status: string; reason?: string; message?: string }> | undefined)?.find((c) => c.type === type);

  // Values that differ from the defaults only where local mode needs it: the images were
  // imported, never pulled; quicker readiness for the test.
  const localValues = yaml.dump({
    image: { pullPolicy: 'Never' },
    probes: { readiness: { initialDelaySeconds: 1, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 3 } },
  });

  before(async () => {
    [cluster, helm] = await Promise.all([sharedLocalCluster(), ensureHelm()]);
    await kubectl(['create', 'namespace', releaseNs]);
    await kubectl(['create', 'namespace', mcNs]);
    // Both namespaces enforce Pod Security "restricted": the operator's pods, the helm test pod
    // and the mail nodes must all be admitted by the API server's PodSecurity admission.
    for (const ns of [releaseNs, mcNs]) {
      await kubectl(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/enforce-version=latest']);
    }
    // On a cluster where the CRD was applied by hand (another suite), let this release adopt
    // it, as a user moving to the chart would.
    if (await tryGetJson(['get', 'crd', CRD])) {
      await kubectl(['label', '--overwrite', 'crd', CRD, 'app.kubernetes.io/managed-by=Helm']);
      await kubectl(['annotate', '--overwrite', 'crd', CRD, `meta.helm.sh/release-name=${release}`, `meta.helm.sh/release-namespace=${releaseNs}`]);
    }
  });

  after(async () => {
    if (!cluster) return;
    if (installed) await runHelm(helm, ['uninstall', release, '--wait', '--timeout', '60s'], { kubeconfig: cluster.kubeconfigPath, namespace: releaseNs }).catch(() => undefined);
    await kubectl(['delete', 'namespace', mcNs, releaseNs, '--ignore-not-found', '--wait=false']).catch(() => undefined);
  });

  it('passes helm lint --strict', async () => {
    assert.match(await helmOk(helm, ['lint', '--strict', chartDir]), /0 chart\(s\) failed/);
  });

  it('renders objects that the API server accepts (kubectl apply --dry-run=server)', async () => {
    // Without the `helm test` hooks: their Pod names a ServiceAccount that a dry run never creates.
    const manifest = await helmOk(helm, ['template', release, chartDir, '--namespace', releaseNs, '--skip-tests', '--values', '-'], { input: localValues });
    const objects = yaml.loadAll(manifest).filter(Boolean) as Obj[];
    assert.ok(objects.length >= 10, `only ${objects.length} objects rendered`);
    const out = await kubectl(['apply', '--dry-run=server', '-f', '-'], manifest);
    const accepted = out.split('\n').filter((l) => /\((server dry run)\)/.test(l));
    assert.equal(accepted.length, objects.length, `accepted:\n${out}`);
    // The namespaced variant too: Roles in the watched namespace.
    const namespaced = await helmOk(helm, ['template', release, chartDir, '--namespace', releaseNs, '--skip-tests', '--set', `watchNamespaces={${mcNs}}`]);
    const out2 = await kubectl(['apply', '--dry-run=server', '-f', '-'], namespaced);
    assert.match(out2, new RegExp(`role.rbac.authorization.k8s.io/${fullname} created \\(server dry run\\)`));
  });

  it('installs: the operator runs as 2 pods of the chart\'s Deployment with its ServiceAccount and RBAC, one holds the Lease', async () => {
    const started = Date.now();
    await helmOk(helm, ['install', release, chartDir, '--wait', '--timeout', '180s', '--values', '-'], { kubeconfig: cluster.kubeconfigPath, namespace: releaseNs, input: localValues, timeoutMs: 240_000 });
    installed = true;
    const crd = await getJson(['get', 'crd', CRD]);
    assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    assert.equal(crd.metadata.annotations?.['meta.helm.sh/release-name'], release);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${CRD}`]);

    await waitUntil('both operator pods Running and ready', async () => {
      const pods = await operatorPods();
      return pods.length === 2 && pods.every((p) => condition(p, 'Ready')?.status === 'True');
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    const pods = await operatorPods();
    for (const pod of pods) {
      assert.equal(pod.spec.serviceAccountName, fullname);
      assert.equal(pod.spec.containers[0].image, 'mailcluster/operator:0.1.0');
      assert.ok(pod.spec.containers[0].args.includes('--leader-elect'));
      assert.equal(pod.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
    }
    // Exactly one leader; the chart's (pre-created) Lease names it.
    await waitUntil('one leader among the operator pods', async () => {
      const leaders = await Promise.all(pods.map((p) => podMetric(p, 'mailcluster_operator_leader')));
      return leaders.reduce((a, b) => a + b, 0) === 1;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const lease = await getJson(['get', 'lease', 'mailcluster-operator', '-n', releaseNs]);
    assert.ok(lease.spec.holderIdentity, 'the Lease has a holder');
    console.log(`      helm install to 2 ready operator pods: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The RBAC the pods run with: what the operator needs, and not more.
    await expectRights([
      [['list', 'mailclusters.mailcluster.io', '--all-namespaces'], true],
      [['patch', 'mailclusters.mailcluster.io', '--subresource=status', '-n', mcNs], true],
      [['patch', 'pods', '-n', mcNs], true],
      [['delete', 'persistentvolumeclaims', '-n', mcNs], true],
      [['create', 'poddisruptionbudgets.policy', '-n', mcNs], true],
      [['update', 'leases.coordination.k8s.io/mailcluster-operator', '-n', releaseNs], true],
      [['update', 'mailclusters.mailcluster.io', '-n', mcNs], false],
      [['delete', 'services', '-n', mcNs], false],
      [['delete', 'secrets', '-n', mcNs], false],
      // No Secret reads anywhere (a PATCH answers with the object, so no patch either);
      // its own Secrets are written whole (create, update); its master key is read by name.
      [['get', 'secrets', '-n', mcNs], false],
      [['list', 'secrets', '--all-namespaces'], false],
      [['watch', 'secrets', '--all-namespaces'], false],
      [['patch', 'secrets', '-n', mcNs], false],
      [['create', 'secrets', '-n', mcNs], true],
      [['update', 'secrets', '-n', mcNs], true],
      [['get', `secrets/${fullname}-master-key`, '-n', releaseNs], true],
      [['get', 'secrets/other', '-n', releaseNs], false],
      [['create', 'networkpolicies.networking.k8s.io', '-n', mcNs], true],
      [['update', 'leases.coordination.k8s.io/other', '-n', releaseNs], false],
      [['get', 'leases.coordination.k8s.io', '-n', mcNs], false],
      [['list', 'nodes'], false],
      [['create', 'deployments.apps', '-n', mcNs], false],
    ]);
  });

  it('helm test: the test pod finds a ready operator behind the metrics Service, then its objects are gone', async () => {
    // The test pod runs `mailcluster operator check` from the operator image.
    const out = await helmOk(helm, ['test', release, '--timeout', '120s'], { kubeconfig: cluster.kubeconfigPath, namespace: releaseNs, timeoutMs: 150_000 });
    assert.match(out, /Phase:\s+Succeeded/);
    await waitUntil('the passed test\'s pod, ServiceAccount and Role deleted (hook-succeeded)', async () =>
      (await getJson<{ items: Obj[] }>(['get', 'pods,serviceaccounts,roles,rolebindings', '-n', releaseNs, '-l', 'app.kubernetes.io/component=test'])).items.length === 0,
    { timeoutMs: 30_000, intervalMs: 1000 });
  });

  it('the chart\'s operator reconciles a MailCluster: children created, observedGeneration and Ready', async () => {
    const started = Date.now();
    await kubectl(['apply', '-n', mcNs, '-f', '-'], yaml.dump({
      apiVersion: 'mailcluster.io/v1alpha1',
      kind: 'MailCluster',
      metadata: { name: 'smtp' },
      spec: { replicas: 1, hostname: 'smtp.helm-e2e.example', relayDomains: ['customer.example'], storage: { size: '16Mi' }, drainTimeout: '10s' },
    }));
    await waitUntil('the MailCluster observed, its children created', async () => {
      const mc = await getJson(['get', 'mailcluster', 'smtp', '-n', mcNs]);
      return mc.status?.observedGeneration === mc.metadata.generation && Boolean(await tryGetJson(['get', 'configmap', 'smtp-0-config', '-n', mcNs]));
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    for (const child of [['secret', 'smtp-mailq'], ['secret', 'smtp-admin'], ['secret', 'smtp-peer-tls'], ['networkpolicy', 'smtp'], ['service', 'smtp'], ['service', 'smtp-peers'], ['pod', 'smtp-0'], ['pvc', 'smtp-0-spool'], ['pdb', 'smtp']]) {
      const obj = await getJson(['get', ...child, '-n', mcNs]);
      assert.equal(obj.metadata.labels?.['app.kubernetes.io/managed-by'], 'mailcluster-operator', child.join('/'));
    }
    await waitUntil('the MailCluster Ready', async () => condition(await getJson(['get', 'mailcluster', 'smtp', '-n', mcNs]), 'Ready')?.status === 'True', { timeoutMs: 90_000, intervalMs: 1000 });
    console.log(`      MailCluster created to Ready: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // It was this release's leader that did it.
    const counts = await Promise.all((await operatorPods()).map((p) => podMetric(p, 'mailcluster_operator_reconciles_total')));
    assert.ok(counts.some((n) => n > 0), `no reconcile counted by the chart's operator pods: ${counts.join(', ')}`);
  });

  it('an autoscaling/v2 HPA (examples/hpa.yaml) resolves the MailCluster through its scale subresource and drives it', async () => {
    const hpa = (yaml.load(readFileSync(hpaExample, 'utf8')) as Obj);
    assert.equal(hpa.kind, 'HorizontalPodAutoscaler');
    assert.equal(hpa.spec.scaleTargetRef.kind, 'MailCluster');
    try {
      await kubectl(['apply', '-n', mcNs, '-f', hpaExample]);
      await waitUntil('HPA condition AbleToScale=True', async () => {
        const h = await getJson(['get', 'hpa.v2.autoscaling', hpa.metadata.name, '-n', mcNs]);
        return condition(h, 'AbleToScale')?.status === 'True';
      }, { timeoutMs: 60_000, intervalMs: 1000 });
      const h = await getJson(['get', 'hpa.v2.autoscaling', hpa.metadata.name, '-n', mcNs]);
      // SucceededGetScale, or SucceededRescale once it has changed the scale.
      assert.match(String(condition(h, 'AbleToScale')?.reason), /^Succeeded(GetScale|Rescale)$/);
      // Below minReplicas (2), the HPA scales the MailCluster up through /scale; the operator follows.
      await waitUntil('the HPA raising spec.replicas to minReplicas', async () => (await getJson(['get', 'mailcluster', 'smtp', '-n', mcNs])).spec.replicas === 2, { timeoutMs: 60_000, intervalMs: 1000 });
      await waitUntil('the operator creating the second node', async () => Boolean(await tryGetJson(['get', 'pod', 'smtp-1', '-n', mcNs])), { timeoutMs: 30_000, intervalMs: 500 });
      const scale = JSON.parse(await kubectl(['get', '--raw', `/apis/mailcluster.io/v1alpha1/namespaces/${mcNs}/mailclusters/smtp/scale`])) as Obj;
      assert.equal(scale.spec.replicas, 2);
      assert.match(String(scale.status.selector), /app\.kubernetes\.io\/instance=smtp/);
    } finally {
      await kubectl(['delete', 'hpa', hpa.metadata.name, '-n', mcNs, '--ignore-not-found']);
    }
  });

  it('kubectl autoscale mc works', async () => {
    try {
      const out = await kubectl(['autoscale', 'mc', 'smtp', '-n', mcNs, '--min', '2', '--max', '5', '--cpu-percent', '80']);
      assert.match(out, /autoscaled/);
      const h = await getJson(['get', 'hpa.v2.autoscaling', 'smtp', '-n', mcNs]);
      assert.deepEqual(h.spec.scaleTargetRef, { apiVersion: 'mailcluster.io/v1alpha1', kind: 'MailCluster', name: 'smtp' });
      assert.equal(h.spec.minReplicas, 2);
      assert.equal(h.spec.maxReplicas, 5);
      await waitUntil('AbleToScale=True for the kubectl-made HPA', async () =>
        condition(await getJson(['get', 'hpa.v2.autoscaling', 'smtp', '-n', mcNs]), 'AbleToScale')?.status === 'True', { timeoutMs: 60_000, intervalMs: 1000 });
    } finally {
      await kubectl(['delete', 'hpa', 'smtp', '-n', mcNs, '--ignore-not-found']);
    }
  });

  it('upgrades the CRD and, to one watched namespace (log level, replicas), the Deployment: Roles replace the ClusterRole, the new operator takes over', async () => {
    // The CRD is a template, so upgrade brings the chart's schema back over an older one (a
    // CRD in the chart's crds/ directory would never be touched): drop its printer columns first.
    await kubectl(['patch', 'crd', CRD, '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/versions/0/additionalPrinterColumns' }])]);
    const started = Date.now();
    await helmOk(helm, ['upgrade', release, chartDir, '--reuse-values', '--set', 'logLevel=debug', '--set', 'replicaCount=1', '--set', `watchNamespaces={${mcNs}}`, '--wait', '--timeout', '180s'],
      { kubeconfig: cluster.kubeconfigPath, namespace: releaseNs, timeoutMs: 240_000 });
    const crd = await getJson(['get', 'crd', CRD]);
    assert.deepEqual((crd.spec.versions[0].additionalPrinterColumns as Array<{ name: string }>).map((c) => c.name), ['Replicas', 'Ready', 'Address', 'Age']);
    const deployment = await getJson(['get', 'deployment', fullname, '-n', releaseNs]);
    assert.equal(deployment.spec.replicas, 1);
    const args: string[] = deployment.spec.template.spec.containers[0].args;
    assert.equal(args[args.indexOf('--log-level') + 1], 'debug');
    assert.equal(args[args.indexOf('--namespace') + 1], mcNs);
    // Now nothing cluster-wide: no Secret (or any) reads outside the watched namespace.
    assert.equal((await getJson<{ items: Obj[] }>(['get', 'clusterrolebindings', '-l', instance])).items.length, 0);
    await expectRights([
      [['list', 'secrets', '--all-namespaces'], false],
      [['list', 'secrets', '-n', releaseNs], false],
      [['list', 'mailclusters.mailcluster.io', '--all-namespaces'], false],
      [['list', 'secrets', '-n', mcNs], false],
      [['get', 'secrets', '-n', mcNs], true], // namespaced only: the TLS Secret a spec names
      [['patch', 'mailclusters.mailcluster.io', '--subresource=status', '-n', mcNs], true],
    ]);
    await waitUntil('one operator pod, with the new flags, ready', async () => {
      const pods = await operatorPods();
      return pods.length === 1 && pods[0].spec.containers[0].args.includes('debug') && condition(pods[0], 'Ready')?.status === 'True';
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    // The new pod leads and reconciles a change.
    await kubectl(['patch', 'mailcluster', 'smtp', '-n', mcNs, '--type=merge', '-p', JSON.stringify({ spec: { relayDomains: ['customer.example', 'other.example'] } })]);
    await waitUntil('the upgraded operator observing the new generation', async () => {
      const mc = await getJson(['get', 'mailcluster', 'smtp', '-n', mcNs]);
      return mc.status?.observedGeneration === mc.metadata.generation;
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    const [pod] = await operatorPods();
    assert.equal(await podMetric(pod, 'mailcluster_operator_leader'), 1);
    console.log(`      helm upgrade to the new operator reconciling: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  it('uninstalls: no operator object is left behind; the CRD and the MailClusters stay', async () => {
    await helmOk(helm, ['uninstall', release, '--wait', '--timeout', '90s'], { kubeconfig: cluster.kubeconfigPath, namespace: releaseNs, timeoutMs: 120_000 });
    installed = false;
    const kinds = 'deployments,replicasets,pods,serviceaccounts,services,roles,rolebindings,poddisruptionbudgets,leases,configmaps,secrets';
    let left: string[] = [];
    await waitUntil('every namespaced object of the release gone', async () => {
      left = (await getJson<{ items: Obj[] }>(['get', kinds, '-n', releaseNs, '-l', instance])).items.map((o) => `${o.kind}/${o.metadata.name}`);
      return left.length === 0;
    }, { timeoutMs: 60_000, intervalMs: 1000 }).catch((err: Error) => { throw new Error(`${err.message}; left: ${left.join(', ')}`); });
    assert.equal((await getJson<{ items: Obj[] }>(['get', 'leases', '-n', releaseNs])).items.length, 0, 'no Lease left');
    assert.equal((await getJson<{ items: Obj[] }>(['get', 'clusterroles,clusterrolebindings', '-l', instance])).items.length, 0);
    const crd = await getJson(['get', 'crd', CRD]);
    assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    assert.ok(await tryGetJson(['get', 'mailcluster', 'smtp', '-n', mcNs]), 'the MailCluster survives the operator');
    // Made by the operator, not by the chart: kept, so a reinstall keeps every cluster's credentials.
    assert.ok(await tryGetJson(['get', 'secret', `${fullname}-master-key`, '-n', releaseNs]), 'the master key Secret is kept');
  });
});
