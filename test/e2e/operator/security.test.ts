// Issue 10 on the real control plane: the operator running with exactly the chart's
// cluster-wide RBAC (rendered by `helm template`, bound to a ServiceAccount whose token the
// operator uses), in a namespace where Pod Security admission enforces `restricted`.
// What it proves: no get/list/watch/patch on Secrets is needed; the admin token, its hash and
// the MAILQv2 password are the master key's HMACs; scheduler.auth lets in exactly the live pod
// addresses and follows them; the NetworkPolicy exists with its rules; the peer TLS Secret is
// created once; no Secret is rewritten while nothing changes.
// The pods run on the real kubelet (the shared kubelet cluster; root), so "restricted" is
// what containerd and runc really apply. Its CNI (bridge) does NOT enforce NetworkPolicy, so
// this suite checks the object and its rules, not that traffic is dropped.
// The operator runs inside the node's network namespace, as in a cluster, with the chart's
// RBAC through a ServiceAccount token. This suite binds nothing of its own.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { ensureHelm, helmOk } from '../../../local/src/tools/helm.ts';
import type { LocalCluster } from '../../../local/src/index.ts';
import type { KubeletNode } from '../../../local/src/node/node.ts';
import { kubeletSuitesWanted, sharedLocalCluster } from '../../support/local-cluster.ts';
import { httpInside } from '../../support/inside.ts';
import { makeTempDir } from '../../support/processes.ts';
import { clients, crdYaml, inNode, mailClusterObject, startOperator, waitUntil, type Clients, type OperatorProcess } from './harness.ts';

const chartDir = fileURLToPath(new URL('../../../helm/mailcluster-operator', import.meta.url));
const suffix = randomBytes(3).toString('hex');
const NS = `sec-e2e-${suffix}`;
const OP_NS = `sec-e2e-op-${suffix}`;
const SA = 'mailcluster-operator';
const MC = 'relay';
const MASTER_KEY_SECRET = 'op-master-key';
const OPERATOR_LABELS = 'app.kubernetes.io/name=mailcluster-operator,app.kubernetes.io/instance=sec';

interface Rule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
interface Obj { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; rules?: Rule[] }

const b64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

(kubeletSuitesWanted() ? describe : describe.skip)('operator security end to end on a real kubelet (restricted Pod Security, chart RBAC without Secret reads; NetworkPolicy not enforced by the bridge CNI; root)', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let node: KubeletNode;
  let c: Clients;
  let operator: OperatorProcess | undefined;
  let operatorKubeconfig: string;
  const created: string[] = [];

  const kubectl = async (args: string[], input?: string, timeoutMs = 60_000): Promise<string> =>
    (await cluster.kubectl(args, { ...(input !== undefined ? { input } : {}), timeoutMs })).stdout;
  const canI = (...args: string[]): Promise<boolean> => new Promise((resolve, reject) => {
    execFile(cluster.kubectlPath, ['auth', 'can-i', ...args, '--as', `system:serviceaccount:${OP_NS}:${SA}`], { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 30_000 }, (err, stdout, stderr) => {
      if (stdout.trim() === 'yes' && !err) resolve(true);
      else if (stdout.trim().startsWith('no')) resolve(false);
      else reject(new Error(`kubectl auth can-i ${args.join(' ')}: ${err?.message ?? ''} ${stderr}`));
    });
  });
  const pods = async () => (await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${MC}` })).items.filter((p) => !p.metadata?.deletionTimestamp);
  const secretData = async (name: string): Promise<Record<string, string>> => (await c.core.readNamespacedSecret({ name, namespace: NS })).data ?? {};
  const aclOf = async (): Promise<string[]> => b64((await secretData(`${MC}-mailq`))['scheduler.auth']).trim().split(':').slice(3).join(':').split(' ').sort();
  const podAclsNow = async (): Promise<string[]> => (await pods()).map((p) => p.status?.podIP).filter((ip): ip is string => Boolean(ip)).map((ip) => `[${ip}]/32`).sort();
  const secretWrites = async (): Promise<number> => operator!.metric('mailcluster_operator_writes_total', { kind: 'Secret' });

  async function startRestrictedOperator(...extra: string[]): Promise<OperatorProcess> {
    return startOperator(operatorKubeconfig, [
      '--operator-namespace', OP_NS, '--master-key-secret', MASTER_KEY_SECRET, '--operator-pod-selector', OPERATOR_LABELS, ...extra,
    ], inNode(node));
  }

  before(async function () {
    this.timeout(20 * 60_000); // the first run may build helm
    cluster = await sharedLocalCluster();
    node = cluster.kubeletNode!;
    c = clients(cluster.kubeConfig);
    const helm = await ensureHelm();
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], crdYaml());
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailclusters.mailcluster.io']);
    // The mail namespace enforces Pod Security "restricted" (the API server's PodSecurity
    // admission plugin is on by default; the control plane does not turn it off).
    await kubectl(['apply', '-f', '-'], yaml.dump({
      apiVersion: 'v1', kind: 'Namespace',
      metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } },
    }));
    await kubectl(['create', 'namespace', OP_NS]);
    created.push(NS, OP_NS);

    // The chart's own cluster-wide rules (default values: every namespace), bound to a
    // ServiceAccount of ours; the operator runs outside the cluster with that account's token.
    const rendered = yaml.loadAll(await helmOk(helm, ['template', 'sec', chartDir, '--namespace', OP_NS, '--set', `masterKey.secretName=${MASTER_KEY_SECRET}`]))
      .filter((d): d is Obj => d !== null && typeof d === 'object');
    const clusterRole = rendered.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'sec-mailcluster-operator')!;
    const keyRole = rendered.find((o) => o.kind === 'Role' && o.metadata.name === 'sec-mailcluster-operator-master-key')!;
    assert.ok(clusterRole && keyRole, 'helm template renders the operator ClusterRole and the master key Role');
    const roleName = `sec-e2e-${suffix}`;
    await kubectl(['apply', '-f', '-'], [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SA, namespace: OP_NS } },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: roleName }, rules: clusterRole.rules },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: roleName }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName }, subjects: [{ kind: 'ServiceAccount', name: SA, namespace: OP_NS }] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'master-key', namespace: OP_NS }, rules: keyRole.rules },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'master-key', namespace: OP_NS }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'master-key' }, subjects: [{ kind: 'ServiceAccount', name: SA, namespace: OP_NS }] },
    ].map((o) => yaml.dump(o)).join('---\n'));
    created.push(`clusterrole/${roleName}`, `clusterrolebinding/${roleName}`);
    const token = await c.core.createNamespacedServiceAccountToken({ name: SA, namespace: OP_NS, body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } } as never });
    const current = cluster.kubeConfig.getCurrentCluster()!;
    const ca = current.caData ?? readFileSync(current.caFile!).toString('base64');
    operatorKubeconfig = join(makeTempDir('sec-e2e'), 'kubeconfig');
    writeFileSync(operatorKubeconfig, yaml.dump({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'sa',
      clusters: [{ name: 'local', cluster: { server: cluster.server, 'certificate-authority-data': ca } }],
      users: [{ name: 'sa', user: { token: token.status!.token } }],
      contexts: [{ name: 'sa', context: { cluster: 'local', user: 'sa' } }],
    }), { mode: 0o600 });
    // This operator watches every namespace: another suite's MailCluster still going away
    // would show up in its counts (writes, errors) as if they were this suite's.
    await waitUntil('no other suite\'s MailCluster left', async () => {
      const all = await c.custom.listClusterCustomObject({ group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters' }) as { items: Array<{ metadata: { namespace: string } }> };
      return all.items.every((m) => m.metadata.namespace === NS);
    }, { timeoutMs: 120_000, intervalMs: 500 });
    operator = await startRestrictedOperator();
  });

  after(async function () {
    this.timeout(60_000);
    await operator?.stop();
    if (!cluster) return;
    for (const what of created.reverse()) {
      const args = what.includes('/') ? ['delete', what] : ['delete', 'namespace', what];
      await kubectl([...args, '--wait=false', '--ignore-not-found']).catch(() => undefined);
    }
  });

  it('the chart\'s ClusterRole gives the operator no get, list, watch or patch on Secrets anywhere (kubectl auth can-i)', async () => {
    for (const verb of ['get', 'list', 'watch', 'patch', 'delete']) {
      assert.equal(await canI(verb, 'secrets', '-n', NS), false, `${verb} secrets in ${NS}`);
      assert.equal(await canI(verb, 'secrets', '--all-namespaces'), false, `${verb} secrets everywhere`);
    }
    assert.equal(await canI('create', 'secrets', '-n', NS), true);
    assert.equal(await canI('update', 'secrets', '-n', NS), true);
    assert.equal(await canI('get', `secrets/${MASTER_KEY_SECRET}`, '-n', OP_NS), true, 'its master key, by name');
    assert.equal(await canI('get', 'secrets/anything-else', '-n', OP_NS), false);
    assert.equal(await canI('create', 'networkpolicies.networking.k8s.io', '-n', NS), true);
  });

  it('Pod Security "restricted" is enforced in the mail namespace: a pod that breaks it is refused', async () => {
    const bad = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'not-restricted', namespace: NS }, spec: { containers: [{ name: 'c', image: 'mailcluster/node:0.1.0' }] } };
    await assert.rejects(kubectl(['apply', '-f', '-'], JSON.stringify(bad)), /violates PodSecurity "restricted/);
  });

  it('the operator, with that RBAC, admits a 2-node MailCluster\'s pods at restricted, running as uid 10001, with every child', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, MC, { replicas: 2, hostname: 'smtp.sec.example', relayDomains: ['customer.example'], storage: { size: '16Mi' } })));
    await waitUntil('2 pods with addresses', async () => (await pods()).filter((p) => p.status?.podIP).length === 2, { timeoutMs: 60_000, intervalMs: 250 });
    for (const p of await pods()) {
      assert.equal(p.spec?.securityContext?.runAsUser, 10001);
      assert.equal(p.spec?.securityContext?.runAsNonRoot, true);
    }
    const names = async (kind: string) => (await kubectl(['get', kind, '-n', NS, '-l', `app.kubernetes.io/instance=${MC}`, '-o', 'name'])).trim().split('\n').sort();
    assert.deepEqual(await names('secrets'), [`secret/${MC}-admin`, `secret/${MC}-mailq`, `secret/${MC}-peer-tls`]);
    assert.deepEqual(await names('networkpolicies'), [`networkpolicy.networking.k8s.io/${MC}`]);
    assert.equal(await operator!.metric('mailcluster_operator_reconcile_errors_total'), 0, operator!.logs().slice(-3000));
  });

  it('each node runs as its own ServiceAccount <name>-<i>-node: its token (as mounted in the pod) reads and watches its own ConfigMap and nothing else', async () => {
    assert.equal(await canI('create', 'roles.rbac.authorization.k8s.io', '-n', NS), true, 'the operator creates the nodes\' Roles');
    assert.equal(await canI('escalate', 'roles.rbac.authorization.k8s.io', '-n', NS), false, 'without the escalate right');
    assert.equal(await canI('bind', 'roles.rbac.authorization.k8s.io', '-n', NS), false, 'or the bind right');
    const pod = (await pods()).find((p) => p.metadata?.name === `${MC}-0`)!;
    assert.equal(pod.spec?.serviceAccountName, `${MC}-0-node`);
    // read inside the running container, where the kubelet mounted them
    const saDir = '/var/run/secrets/kubernetes.io/serviceaccount';
    const inPod = (file: string) => kubectl(['exec', '-n', NS, `${MC}-0`, '--', 'cat', `${saDir}/${file}`]);
    await waitUntil(`${MC}-0 running`, async () => (await pods()).find((p) => p.metadata?.name === `${MC}-0`)?.status?.containerStatuses?.[0]?.state?.running !== undefined, { timeoutMs: 60_000, intervalMs: 250 });
    const token = (await inPod('token')).trim();
    assert.equal((await inPod('namespace')).trim(), NS);
    const ca = Buffer.from(await inPod('ca.crt'));
    const server = new URL(cluster.server);
    const status = (path: string): Promise<number> => new Promise((resolve, reject) => {
      const req = httpsRequest({ host: server.hostname, port: Number(server.port), path, ca, headers: { Authorization: `Bearer ${token}` }, timeout: 10_000 }, (res) => {
        res.resume();
        // A watch that was allowed streams on: its status is enough.
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
      req.end();
    });
    const cms = `/api/v1/namespaces/${NS}/configmaps`;
    const own = `${MC}-0-config`;
    const allowed = {
      [`get its ConfigMap ${own}`]: await status(`${cms}/${own}`),
      'list it by field selector': await status(`${cms}?fieldSelector=metadata.name%3D${own}`),
      'watch it by field selector': await status(`${cms}?fieldSelector=metadata.name%3D${own}&watch=true&timeoutSeconds=1`),
    };
    const refused = {
      [`get another node's ConfigMap ${MC}-1-config`]: await status(`${cms}/${MC}-1-config`),
      'list ConfigMaps': await status(cms),
      'watch ConfigMaps': await status(`${cms}?watch=true&timeoutSeconds=1`),
      [`get Secret ${MC}-mailq`]: await status(`/api/v1/namespaces/${NS}/secrets/${MC}-mailq`),
      'list Secrets': await status(`/api/v1/namespaces/${NS}/secrets`),
      'list pods': await status(`/api/v1/namespaces/${NS}/pods`),
      [`get pod ${MC}-0`]: await status(`/api/v1/namespaces/${NS}/pods/${MC}-0`),
      'list ConfigMaps in kube-system': await status('/api/v1/namespaces/kube-system/configmaps'),
    };
    console.log(`      node token: allowed ${JSON.stringify(allowed)}; refused ${JSON.stringify(refused)}`);
    for (const [what, code] of Object.entries(allowed)) assert.equal(code, 200, what);
    for (const [what, code] of Object.entries(refused)) assert.equal(code, 403, what);
    // Nor can it write its own ConfigMap (the operator's alone).
    const nodeCanI = (...args: string[]): Promise<boolean> => new Promise((resolve) => {
      execFile(cluster.kubectlPath, ['auth', 'can-i', ...args, '-n', NS, '--as', `system:serviceaccount:${NS}:${MC}-0-node`], { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 30_000 }, (_err, stdout) => resolve(stdout.trim() === 'yes'));
    });
    for (const verb of ['patch', 'update', 'delete', 'create']) assert.equal(await nodeCanI(verb, `configmaps/${own}`), false, `${verb} its ConfigMap`);
    // The node uses it: its ConfigMap watch is up (the pod's /metrics).
    await waitUntil('both nodes watch their ConfigMap through the API server', async () => {
      for (const p of await pods()) {
        const text = (await httpInside(node.dial, p.status!.podIP!, 8025, '/metrics', { timeoutMs: 3000 }).catch(() => ({ body: '' }))).body;
        if (!/^mailcluster_config_api_watch_up 1$/m.test(text)) return false;
      }
      return true;
    }, { timeoutMs: 30_000, intervalMs: 250 });
  });

  it('puts a node\'s Role and RoleBinding deleted by hand back on their watch events, long before any resync, with the chart\'s rights', async () => {
    // The chart's list/watch on roles and rolebindings feeds the operator's informers; the
    // resync (10 minutes here) no longer re-applies them, so only the events can bring them back.
    const name = `${MC}-1-node`;
    const uids = async () => JSON.parse(await kubectl(['get', `role/${name}`, `rolebinding/${name}`, '-n', NS, '-o', 'json'])).items.map((o: { metadata: { uid: string } }) => o.metadata.uid) as string[];
    const before = await uids();
    const deletedAt = Date.now();
    await kubectl(['delete', `role/${name}`, `rolebinding/${name}`, '-n', NS]);
    let after: string[] = [];
    await waitUntil(`Role and RoleBinding ${name} back`, async () => {
      after = await uids().catch(() => []);
      return after.length === 2;
    }, { timeoutMs: 15_000, intervalMs: 250 });
    assert.ok(after.every((u) => !before.includes(u)), 'new objects, made again by the operator');
    console.log(`      ${name}: Role and RoleBinding back ${((Date.now() - deletedAt) / 1000).toFixed(1)} s after their deletion`);
  });

  it('derives the admin token, its hash and the MAILQv2 password from its master key; the pods get only the hash', async () => {
    const key = Buffer.from(b64((await c.core.readNamespacedSecret({ name: MASTER_KEY_SECRET, namespace: OP_NS })).data?.key).trim(), 'hex');
    assert.equal(key.length, 32, 'the operator made a 32-byte master key');
    const uid = ((await c.custom.getNamespacedCustomObject({ group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters', namespace: NS, name: MC })) as any).metadata.uid as string;
    const hmac = (purpose: string) => createHmac('sha256', key).update(`${purpose}/${NS}/${MC}/${uid}`).digest('hex');
    const token = b64((await secretData(`${MC}-admin`)).token);
    assert.equal(token, hmac('admin'));
    const mailq = await secretData(`${MC}-mailq`);
    assert.equal(b64(mailq['admin-token.sha256']).trim(), createHash('sha256').update(token).digest('hex'));
    assert.equal(b64(mailq['etrn-password']), hmac('mailq'));
    const cm = (await c.core.readNamespacedConfigMap({ name: `${MC}-0-config`, namespace: NS })).data?.['smtpserver.conf'] ?? '';
    assert.match(cm, /^PARAM admin-token-sha256 @\/etc\/mailcluster\/admin-token\.sha256$/m);
    assert.match(cm, new RegExp(`^PARAM peer-tls-name ${MC}-peers\\.${NS}\\.svc$`, 'm'));
    const pod = (await pods())[0];
    assert.ok(!JSON.stringify(pod.spec).includes(`${MC}-admin`), 'the plaintext token is never mounted');
  });

  it('scheduler.auth lets the ETRN user in from exactly the live pod addresses, and follows them on scale-up and pod replacement', async function () {
    this.timeout(360_000);
    await waitUntil('ACL = the 2 pod addresses', async () => JSON.stringify(await aclOf()) === JSON.stringify(await podAclsNow()), { timeoutMs: 30_000, intervalMs: 250 });
    assert.equal((await aclOf()).length, 2);
    await kubectl(['scale', 'mailcluster', MC, '-n', NS, '--replicas=3']);
    await waitUntil('3 pods with addresses', async () => (await pods()).filter((p) => p.status?.podIP).length === 3, { timeoutMs: 60_000, intervalMs: 250 });
    await waitUntil('ACL = the 3 pod addresses', async () => JSON.stringify(await aclOf()) === JSON.stringify(await podAclsNow()), { timeoutMs: 30_000, intervalMs: 250 });
    assert.equal((await aclOf()).length, 3);
    // A replaced pod gets a new address: the old one leaves the ACL, the new one enters it.
    const before = (await pods()).find((p) => p.metadata?.name === `${MC}-2`)!;
    const deleting = Date.now();
    // The pod's grace period is 60 s: the wait is longer, so that a slow drain shows as its figure below.
    await kubectl(['delete', 'pod', `${MC}-2`, '-n', NS, '--wait=true', '--timeout=150s'], undefined, 160_000);
    console.log(`      ${MC}-2 deleted (drained and gone) in ${((Date.now() - deleting) / 1000).toFixed(1)} s`);
    await waitUntil(`${MC}-2 back with an address`, async () => {
      const p = (await pods()).find((x) => x.metadata?.name === `${MC}-2`);
      return Boolean(p?.status?.podIP) && p!.metadata?.uid !== before.metadata?.uid;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    await waitUntil('ACL = the pod addresses after the replacement', async () => JSON.stringify(await aclOf()) === JSON.stringify(await podAclsNow()), { timeoutMs: 30_000, intervalMs: 250 });
    console.log(`      ACL after replacement: ${(await aclOf()).join(' ')} (old ${before.status?.podIP})`);
  });

  it('NetworkPolicy relay: SMTP open, MAILQv2 from the cluster\'s pods, admin from the operator\'s pods (object and rules; the bridge CNI does not enforce it)', async () => {
    const np = JSON.parse(await kubectl(['get', 'networkpolicy', MC, '-n', NS, '-o', 'json']));
    assert.deepEqual(np.metadata.ownerReferences.map((o: any) => [o.kind, o.name, o.controller]), [['MailCluster', MC, true]]);
    assert.equal(np.metadata.labels['app.kubernetes.io/managed-by'], 'mailcluster-operator');
    assert.equal(np.metadata.labels['mailcluster.io/cluster'], MC);
    const own = { 'app.kubernetes.io/instance': MC, 'app.kubernetes.io/name': 'mailcluster-node' };
    assert.deepEqual(np.spec.podSelector.matchLabels, own);
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    const rule = (port: number) => np.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === port));
    assert.equal(rule(2525).from, undefined);
    assert.deepEqual(rule(1174).from, [{ podSelector: { matchLabels: own } }]);
    assert.deepEqual(rule(8025).from, [{
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': OP_NS } },
      podSelector: { matchLabels: { 'app.kubernetes.io/instance': 'sec', 'app.kubernetes.io/name': 'mailcluster-operator' } },
    }]);
  });

  it('writes no Secret while nothing changes; after a restart writes each once, unchanged, and never replaces the peer TLS Secret', async () => {
    const peerTls = await c.core.readNamespacedSecret({ name: `${MC}-peer-tls`, namespace: NS });
    const leaf = new X509Certificate(b64(peerTls.data?.['tls.crt']));
    assert.ok(leaf.verify(new X509Certificate(b64(peerTls.data?.['ca.crt'])).publicKey));
    assert.equal(leaf.checkHost(`${MC}-peers.${NS}.svc`), `${MC}-peers.${NS}.svc`);
    const versions = async () => Object.fromEntries(await Promise.all(['mailq', 'admin', 'peer-tls'].map(async (s) =>
      [s, (await c.core.readNamespacedSecret({ name: `${MC}-${s}`, namespace: NS })).metadata?.resourceVersion] as const)));

    // Quiet: reconciles keep coming (annotations are watch events), Secret writes do not.
    const writes0 = await secretWrites();
    const policyWrites0 = await operator!.metric('mailcluster_operator_writes_total', { kind: 'NetworkPolicy' });
    const reconciles0 = await operator!.metric('mailcluster_operator_reconciles_total');
    const rv0 = await versions();
    for (let i = 0; i < 5; i++) {
      await kubectl(['annotate', 'mailcluster', MC, '-n', NS, `sec-e2e/poke=${i}`, '--overwrite']);
      await new Promise((r) => setTimeout(r, 300));
    }
    await waitUntil('the pokes reconciled', async () => (await operator!.metric('mailcluster_operator_reconciles_total')) >= reconciles0 + 5, { timeoutMs: 20_000, intervalMs: 200 });
    assert.equal(await secretWrites(), writes0, 'no Secret written while nothing changed');
    assert.equal(await operator!.metric('mailcluster_operator_writes_total', { kind: 'NetworkPolicy' }), policyWrites0, 'nor the NetworkPolicy (list and watch shapes compare equal)');
    assert.deepEqual(await versions(), rv0);

    // Restart: the operator knows nothing of what it wrote; it derives the same content.
    const token = (await secretData(`${MC}-admin`)).token;
    await operator!.stop();
    operator = await startRestrictedOperator();
    await waitUntil('the new operator reconciled the cluster', async () => (await operator!.metric('mailcluster_operator_reconciles_total')) >= 1, { timeoutMs: 30_000, intervalMs: 200 });
    await new Promise((r) => setTimeout(r, 2000));
    const after = await secretWrites();
    console.log(`      Secret write requests by the restarted operator: ${after} (mailq + admin update, peer-tls create answered 409)`);
    assert.equal(after, 3);
    assert.equal((await secretData(`${MC}-admin`)).token, token, 'the same token after a restart');
    const rv1 = await versions();
    assert.equal(rv1['peer-tls'], rv0['peer-tls'], 'the peer TLS Secret is created once, never replaced');
    assert.equal(await operator!.metric('mailcluster_operator_reconcile_errors_total'), 0, operator!.logs().slice(-3000));
  });

  it('restores its Secrets deleted by hand within the resync period, though it cannot watch them (--secret-resync 2s)', async () => {
    const token = (await secretData(`${MC}-admin`)).token;
    const oldCa = (await secretData(`${MC}-peer-tls`))['ca.crt'];
    await operator!.stop();
    operator = await startRestrictedOperator('--secret-resync', '2s');
    const started = Date.now();
    await kubectl(['delete', 'secret', `${MC}-admin`, `${MC}-peer-tls`, '-n', NS]);
    await waitUntil('both Secrets back', async () => {
      const names = (await kubectl(['get', 'secrets', '-n', NS, '-o', 'name'])).split('\n');
      return names.includes(`secret/${MC}-admin`) && names.includes(`secret/${MC}-peer-tls`);
    }, { timeoutMs: 30_000, intervalMs: 250 });
    console.log(`      deleted Secrets restored after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal((await secretData(`${MC}-admin`)).token, token, 'the same derived token');
    assert.notEqual((await secretData(`${MC}-peer-tls`))['ca.crt'], oldCa, 'a deleted peer TLS Secret comes back with a new CA (nothing to restore it from)');
  });

  it('without a right to read the user\'s TLS Secret, it still creates the nodes (their mount shows a missing one) and reports no error', async () => {
    const errors0 = await operator!.metric('mailcluster_operator_reconcile_errors_total');
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, 'tlsc', {
      replicas: 1, hostname: 'tls.sec.example', relayDomains: ['customer.example'], storage: { size: '16Mi' }, tls: { secretName: 'no-such-tls' },
    })));
    await waitUntil('pod tlsc-0 created', async () => (await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/instance=tlsc' })).items.length === 1, { timeoutMs: 30_000, intervalMs: 250 });
    const pod = (await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/instance=tlsc' })).items[0];
    assert.ok(pod.spec?.volumes?.some((v) => v.secret?.secretName === 'no-such-tls'));
    assert.equal(await operator!.metric('mailcluster_operator_reconcile_errors_total'), errors0);
    assert.match(operator!.logs(), /no right to read Secrets here/);
    const mc = (await c.custom.getNamespacedCustomObject({ group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters', namespace: NS, name: 'tlsc' })) as any;
    assert.notEqual((mc.status?.conditions ?? []).find((x: any) => x.type === 'Degraded')?.reason, 'TLSSecretMissing', 'it cannot know, so it does not claim it');
  });
});
