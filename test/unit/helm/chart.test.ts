// The chart rendered by the real helm binary, without a server: `helm lint`, `helm template`,
// and values.schema.json refusing bad values with a message that names the key.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { ensureHelm, helmOk, helmVersionFromGoMod, runHelm, type Helm } from '../../../local/src/tools/helm.ts';

const chartDir = fileURLToPath(new URL('../../../helm/mailcluster-operator', import.meta.url));
const crdPath = fileURLToPath(new URL('../../../crds/mailclusters.mailcluster.io.yaml', import.meta.url));
const chartCrdPath = `${chartDir}/files/mailclusters.mailcluster.io.yaml`;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function parseManifests(text: string): K8sObject[] {
  return yaml.loadAll(text).filter((d): d is K8sObject => d !== null && typeof d === 'object');
}

/** The ClusterRoles that extend the built-in admin/edit/view roles (bound to people, not to the operator). */
function isUserRole(o: K8sObject): boolean {
  return Object.keys(o.metadata.labels ?? {}).some((l) => l.startsWith('rbac.authorization.k8s.io/aggregate-to-'));
}

/** The objects `helm install` keeps (not the `helm test` hooks). */
function releaseObjects(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => !o.metadata.annotations?.['helm.sh/hook']);
}

function deploymentArgs(objects: K8sObject[]): string[] {
  const d = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
  return d.spec.template.spec.containers[0].args;
}

function argAfter(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

describe('helm chart mailcluster-operator (helm lint/template, no server)', function () {
  // The first run builds helm from its Go module (minutes); later runs use the cache.
  this.timeout(30 * 60_000);
  let helm: Helm;

  before(async () => {
    helm = await ensureHelm();
  });

  this.timeout(60_000);

  async function template(...set: string[]): Promise<K8sObject[]> {
    const args = ['template', 'mc', chartDir, '--namespace', 'mail-system'];
    for (const s of set) args.push('--set', s);
    return parseManifests(await helmOk(helm, args));
  }

  async function templateFails(set: string[]): Promise<string> {
    const args = ['template', 'mc', chartDir, '--namespace', 'mail-system'];
    for (const s of set) args.push('--set', s);
    const r = await runHelm(helm, args);
    assert.notEqual(r.code, 0, `helm template --set ${set.join(' ')} should fail, rendered:\n${r.stdout.slice(0, 400)}`);
    return r.stderr;
  }

  it('pins helm in local/go/helm/go.mod and reports that version', async () => {
    const goMod = readFileSync(fileURLToPath(new URL('../../../local/go/helm/go.mod', import.meta.url)), 'utf8');
    assert.equal(helmVersionFromGoMod(goMod), helm.version);
    assert.match(await helmOk(helm, ['version', '--short']), new RegExp(`^${helm.version.replace(/\./g, '\\.')}`));
  });

  it('keeps the chart\'s CRD copy identical to the generated crds/ file', () => {
    const generated = readFileSync(crdPath, 'utf8');
    const copy = readFileSync(chartCrdPath, 'utf8');
    assert.ok(copy === generated, `${chartCrdPath} differs from ${crdPath}: run \`cp crds/mailclusters.mailcluster.io.yaml helm/mailcluster-operator/files/\``);
  });

  it('passes helm lint --strict, with default values and with watched namespaces', async () => {
    const out = await helmOk(helm, ['lint', '--strict', chartDir]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    await helmOk(helm, ['lint', '--strict', chartDir, '--set', 'watchNamespaces={mail-a,mail-b}', '--set', 'metrics.serviceMonitor.enabled=true']);
  });

  it('renders the CRD from crds/ as a template, with the keep policy', async () => {
    const objects = await template();
    const crd = objects.find((o) => o.kind === 'CustomResourceDefinition');
    assert.ok(crd, 'no CRD rendered');
    assert.equal(crd.metadata.name, 'mailclusters.mailcluster.io');
    assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    const generated = yaml.load(readFileSync(crdPath, 'utf8')) as K8sObject;
    assert.deepEqual(crd.spec, generated.spec, 'the rendered CRD spec must be the generated one, unchanged');
    assert.equal((await template('crds.install=false')).some((o) => o.kind === 'CustomResourceDefinition'), false);
    const unkept = (await template('crds.keep=false')).find((o) => o.kind === 'CustomResourceDefinition');
    assert.equal(unkept?.metadata.annotations?.['helm.sh/resource-policy'], undefined);
  });

  it('watching all namespaces: one ClusterRole with exactly the operator\'s rules, Lease rights only in its namespace', async () => {
    const objects = releaseObjects(await template());
    const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole' && !isUserRole(o));
    assert.deepEqual(clusterRoles.map((r) => r.metadata.name), ['mc-mailcluster-operator']);
    const rules = clusterRoles[0].rules as Rule[];
    assert.ok(!rules.some((r) => r.verbs.includes('*') || r.resources.includes('*') || r.apiGroups.includes('*')), 'no wildcards');
    assert.ok(!rules.some((r) => r.apiGroups.includes('coordination.k8s.io')), 'no cluster-wide Lease rights');
    const binding = objects.find((o) => o.kind === 'ClusterRoleBinding');
    assert.deepEqual((binding as unknown as { subjects: unknown[] }).subjects, [{ kind: 'ServiceAccount', name: 'mc-mailcluster-operator', namespace: 'mail-system' }]);
    const leaseRole = objects.find((o) => o.kind === 'Role' && o.metadata.name.endsWith('-leader-election'));
    assert.equal(leaseRole?.metadata.namespace, 'mail-system');
    assert.deepEqual([...new Set(((leaseRole?.rules as Rule[]) ?? []).flatMap((r) => r.resources))], ['leases']);
    // get/update only on the operator's own Lease (create cannot be limited by name).
    const named = (leaseRole?.rules as Array<Rule & { resourceNames?: string[] }>).find((r) => r.verbs.includes('update'));
    assert.deepEqual(named?.resourceNames, ['mailcluster-operator']);
  });

  it('watching all namespaces: no ClusterRole may get, list, watch or patch Secrets (a PATCH answers with the object)', async () => {
    for (const objects of [await template(), await template('rbac.aggregateToUserRoles=true', 'leaderElection.enabled=false', 'replicaCount=1')]) {
      const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole');
      assert.ok(clusterRoles.length >= 1);
      for (const role of clusterRoles) {
        for (const rule of (role.rules as Rule[]) ?? []) {
          if (!rule.resources.some((r) => r === 'secrets' || r === '*')) continue;
          const reading = rule.verbs.filter((v) => ['get', 'list', 'watch', 'patch', '*'].includes(v));
          assert.deepEqual(reading, [], `ClusterRole ${role.metadata.name} may ${reading.join(', ')} secrets`);
        }
      }
      const operatorRole = clusterRoles.find((r) => r.metadata.name === 'mc-mailcluster-operator');
      const secretRules = (operatorRole?.rules as Rule[]).filter((r) => r.resources.includes('secrets'));
      assert.deepEqual(secretRules.flatMap((r) => r.verbs).sort(), ['create', 'update'], 'it writes its own Secrets whole');
      const certRules = (operatorRole?.rules as Rule[]).filter((r) => r.apiGroups.includes('cert-manager.io'));
      assert.deepEqual(certRules.map((r) => [r.resources, r.verbs]), [[['certificates'], ['create', 'patch']]], 'Certificates applied, never read');
    }
  });

  it('reads the master key Secret by name only, through a Role in the release namespace', async () => {
    const objects = releaseObjects(await template());
    const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === 'mc-mailcluster-operator-master-key');
    assert.equal(role?.metadata.namespace, 'mail-system');
    const rules = role!.rules as Array<Rule & { resourceNames?: string[] }>;
    assert.deepEqual(rules.filter((r) => r.verbs.includes('get')).map((r) => r.resourceNames), [['mc-mailcluster-operator-master-key']]);
    assert.ok(rules.every((r) => !r.verbs.some((v) => ['list', 'watch', 'patch', 'update', '*'].includes(v))));
    const binding = objects.find((o) => o.kind === 'RoleBinding' && o.metadata.name === 'mc-mailcluster-operator-master-key') as unknown as { subjects: unknown[]; roleRef: { name: string } };
    assert.equal(binding.roleRef.name, 'mc-mailcluster-operator-master-key');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'mc-mailcluster-operator', namespace: 'mail-system' }]);
    const args = deploymentArgs(objects);
    assert.equal(argAfter(args, '--master-key-secret'), 'mc-mailcluster-operator-master-key');
    assert.equal(argAfter(args, '--operator-namespace'), 'mail-system');
    assert.equal(argAfter(deploymentArgs(await template('masterKey.secretName=op-key')), '--master-key-secret'), 'op-key');
  });

  it('passes maxConcurrentRollouts to the operator as --max-concurrent-rollouts, which parses it', async () => {
    assert.equal(argAfter(deploymentArgs(await template()), '--max-concurrent-rollouts'), '3');
    const args = deploymentArgs(await template('maxConcurrentRollouts=7'));
    assert.equal(argAfter(args, '--max-concurrent-rollouts'), '7');
    const { parseOperatorArgs } = await import('../../../operator/src/args.ts');
    assert.equal(parseOperatorArgs(args).maxConcurrentRollouts, 7, 'the operator accepts every flag the chart renders');
  });

  it('tells the operator its pod labels (the NetworkPolicy\'s admin rule) and the metrics scrapers\' selectors', async () => {
    const objects = releaseObjects(await template());
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } };
    const args = deploymentArgs(objects);
    const selector = Object.fromEntries(argAfter(args, '--operator-pod-selector')!.split(',').map((kv) => kv.split('=')));
    assert.deepEqual(selector, { 'app.kubernetes.io/instance': 'mc', 'app.kubernetes.io/name': 'mailcluster-operator' });
    for (const [k, v] of Object.entries(selector)) assert.equal(deployment.spec.template.metadata.labels[k], v, 'the selector selects the operator pods');
    assert.equal(argAfter(args, '--metrics-namespace-selector'), undefined, 'by default only the operator reaches the admin port');
    const withMetrics = deploymentArgs(await template('nodeMetrics.namespaceSelector.kubernetes\\.io/metadata\\.name=monitoring', 'nodeMetrics.podSelector.app=prometheus'));
    assert.equal(argAfter(withMetrics, '--metrics-namespace-selector'), 'kubernetes.io/metadata.name=monitoring');
    assert.equal(argAfter(withMetrics, '--metrics-pod-selector'), 'app=prometheus');
  });

  it('runs the operator as its image\'s USER (operator/Dockerfile), admitted at Pod Security restricted', async () => {
    const dockerfile = readFileSync(fileURLToPath(new URL('../../../operator/Dockerfile', import.meta.url)), 'utf8');
    const user = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(dockerfile);
    assert.ok(user, 'operator/Dockerfile has a numeric USER uid:gid');
    const objects = releaseObjects(await template());
    const pod = (objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { securityContext: Record<string, any>; containers: Array<Record<string, any>> } } } }).spec.template.spec;
    assert.equal(pod.securityContext.runAsUser, Number(user[1]));
    assert.equal(pod.securityContext.runAsGroup, Number(user[2] ?? user[1]));
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    const c = pod.containers[0].securityContext;
    assert.equal(c.allowPrivilegeEscalation, false);
    assert.deepEqual(c.capabilities.drop, ['ALL']);
  });

  it('watching namespaces: only namespaced Roles (no cluster-wide Secret reads), one per namespace', async () => {
    const objects = releaseObjects(await template('watchNamespaces={mail-a,mail-b,mail-a}'));
    assert.equal(objects.filter((o) => o.kind === 'ClusterRoleBinding').length, 0, 'nothing cluster-wide is bound to the operator');
    assert.ok(objects.filter((o) => o.kind === 'ClusterRole').every(isUserRole), 'only the aggregated user roles are ClusterRoles');
    const own = (o: K8sObject) => !o.metadata.name.endsWith('-leader-election') && !o.metadata.name.endsWith('-master-key');
    const roles = objects.filter((o) => o.kind === 'Role' && own(o));
    assert.deepEqual(roles.map((r) => r.metadata.namespace).sort(), ['mail-a', 'mail-b']);
    for (const role of roles) {
      // Secrets: written whole, and read (get, by the name a spec gives for TLS) only in the watched namespace.
      const verbs = (role.rules as Rule[]).filter((r) => r.resources.includes('secrets')).flatMap((r) => r.verbs).sort();
      assert.deepEqual(verbs, ['create', 'get', 'update']);
    }
    const bindings = objects.filter((o) => o.kind === 'RoleBinding' && own(o));
    assert.deepEqual(bindings.map((b) => b.metadata.namespace).sort(), ['mail-a', 'mail-b']);
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const args = deployment.spec.template.spec.containers[0].args;
    assert.deepEqual(args.slice(0, 4), ['--namespace', 'mail-a', '--namespace', 'mail-b']);
  });

  it('renders a hardened, leader-elected Deployment with probes and resources', async () => {
    const objects = await template();
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { replicas: number; template: { spec: { serviceAccountName: string; securityContext: Record<string, unknown>; containers: Array<Record<string, any>> } } };
    };
    assert.equal(deployment.spec.replicas, 2);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'mc-mailcluster-operator');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    const c = pod.containers[0];
    assert.equal(c.image, 'mailcluster/operator:0.1.0');
    assert.ok(c.args.includes('--leader-elect'));
    assert.deepEqual(c.args.slice(c.args.indexOf('--leader-election-namespace'), c.args.indexOf('--leader-election-namespace') + 2), ['--leader-election-namespace', 'mail-system']);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
    const service = objects.find((o) => o.kind === 'Service') as unknown as { spec: { selector: Record<string, string>; ports: Array<{ name: string; port: number }> } };
    assert.deepEqual(service.spec.ports.map((p) => [p.name, p.port]), [['metrics', 8080]]);
    // The metrics Service (and the PDB) select the operator pods and never the helm test pod.
    const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    const podLabels = (deployment as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
    const testPod = objects.find((o) => o.kind === 'Pod');
    assert.ok(testPod, 'the helm test pod is rendered');
    assert.ok(selects(service.spec.selector, podLabels));
    assert.ok(!selects(service.spec.selector, testPod.metadata.labels));
    const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget') as unknown as { spec: { selector: { matchLabels: Record<string, string> } } };
    assert.ok(selects(pdb.spec.selector.matchLabels, podLabels) && !selects(pdb.spec.selector.matchLabels, testPod.metadata.labels));
    assert.equal(objects.some((o) => o.kind === 'ServiceMonitor'), false);
    const monitor = (await template('metrics.serviceMonitor.enabled=true')).find((o) => o.kind === 'ServiceMonitor');
    assert.equal((monitor as unknown as { spec: { endpoints: Array<{ port: string }> } }).spec.endpoints[0].port, 'metrics');
  });

  it('refuses bad values with a message naming the key (values.schema.json and template checks)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['replicaCount=two'], /replicaCount/],
      [['replicaCount=-1'], /replicaCount/],
      [['logLevel=loud'], /logLevel/],
      [['maxConcurrentRollouts=0'], /maxConcurrentRollouts/],
      [['maxConcurrentRollouts=many'], /maxConcurrentRollouts/],
      [['watchNamespaces={Bad_Namespace}'], /watchNamespaces/],
      [['metrics.port=70000'], /metrics[./]port/],
      [['podSecurityContext.runAsNonRoot=false'], /runAsNonRoot/],
      [['securityContext.allowPrivilegeEscalation=true'], /allowPrivilegeEscalation/],
      [['image.pullPolicy=Sometimes'], /pullPolicy/],
      [['metrics.serviceMonitor.interval=often'], /interval/],
      [['resources.limits.memory=lots'], /memory/],
      [['replicaz=2'], /replicaz/],
      [['leaderElection.enabled=false'], /leaderElection\.enabled/],
    ];
    for (const [set, message] of cases) {
      const stderr = await templateFails(set);
      assert.match(stderr, message, `--set ${set.join(' ')}: ${stderr}`);
    }
    // The same values pass when they are right.
    await template('replicaCount=1', 'leaderElection.enabled=false', 'logLevel=debug', 'watchNamespaces={mail-a}');
  });

  it('helm lint reports schema violations too', async () => {
    const r = await runHelm(helm, ['lint', chartDir, '--set', 'logLevel=loud']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /logLevel/);
  });
});
