// The embedded control plane, for real: etcd, kube-apiserver and kube-controller-manager
// built from the pinned modules, started on free loopback ports, driven with the built
// kubectl and with @kubernetes/client-node.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, AppsV1Api } from '@kubernetes/client-node';
import { ensureControlPlaneBinaries, type ControlPlaneBinaries } from '../../../local/src/controlplane/build.ts';
import { startControlPlane, stopControlPlaneInDir, type ControlPlane } from '../../../local/src/controlplane/controlplane.ts';
import { processAlive } from '../../../local/src/controlplane/supervise.ts';
import { KUBERNETES_VERSION } from '../../../local/src/controlplane/versions.ts';

const alive = processAlive;

async function eventually<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

function clients(kubeconfigPath: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

describe('control plane (etcd, kube-apiserver, kube-controller-manager)', function () {
  this.timeout(60_000);
  let dir: string;
  let binaries: ControlPlaneBinaries;
  let cp: ControlPlane | undefined;

  before(async function () {
    this.timeout(40 * 60_000); // a cold build, when npm test's set-up step did not run
    binaries = await ensureControlPlaneBinaries();
    dir = mkdtempSync(join(tmpdir(), 'mailcluster-cp-'));
    this.timeout(180_000);
    cp = await startControlPlane({ dir, binaries, etcdUnsafeNoFsync: true, log: () => {} });
  });

  after(async function () {
    this.timeout(60_000);
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves /readyz to the built kubectl with the admin kubeconfig', async () => {
    const { stdout } = await cp!.kubectl(['get', '--raw', '/readyz']);
    assert.equal(stdout.trim(), 'ok');
    assert.match(cp!.server, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('reports the pinned release from kubectl and the API server', async () => {
    const { stdout } = await cp!.kubectl(['version', '-o', 'json']);
    const v = JSON.parse(stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    assert.equal(v.clientVersion.gitVersion, KUBERNETES_VERSION);
    assert.equal(v.serverVersion.gitVersion, KUBERNETES_VERSION);
  });

  it('stores a namespace and a ConfigMap made with @kubernetes/client-node', async () => {
    const { core } = clients(cp!.kubeconfigPath);
    await core.createNamespace({ body: { metadata: { name: 'cp-basic' } } });
    await core.createNamespacedConfigMap({ namespace: 'cp-basic', body: { metadata: { name: 'greeting' }, data: { hello: 'world' } } });
    const cm = await core.readNamespacedConfigMap({ name: 'greeting', namespace: 'cp-basic' });
    assert.equal(cm.data?.hello, 'world');
    // The service-account controller gives every namespace its `default` ServiceAccount,
    // and the root-CA publisher its kube-root-ca.crt.
    await eventually('ServiceAccount cp-basic/default', 20_000, () => core.readNamespacedServiceAccount({ name: 'default', namespace: 'cp-basic' }));
    const rootCa = await eventually('ConfigMap kube-root-ca.crt', 20_000, () => core.readNamespacedConfigMap({ name: 'kube-root-ca.crt', namespace: 'cp-basic' }));
    assert.equal(rootCa.data?.['ca.crt']?.trim(), readFileSync(cp!.caFile, 'utf8').trim());
  });

  it('garbage-collects an object whose owner is deleted', async () => {
    const { core } = clients(cp!.kubeconfigPath);
    await core.createNamespace({ body: { metadata: { name: 'cp-gc' } } });
    const owner = await core.createNamespacedConfigMap({ namespace: 'cp-gc', body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({
      namespace: 'cp-gc',
      body: { metadata: { name: 'owned', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }] } },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: 'cp-gc', propagationPolicy: 'Background' });
    await eventually('the owned ConfigMap to be collected', 30_000, async () => {
      const list = await core.listNamespacedConfigMap({ namespace: 'cp-gc' });
      return !list.items.some((c) => c.metadata?.name === 'owned');
    });
  });

  it('runs the Deployment and ReplicaSet controllers', async () => {
    const { apps, core } = clients(cp!.kubeconfigPath);
    await core.createNamespace({ body: { metadata: { name: 'cp-apps' } } });
    const labels = { app: 'web' };
    await apps.createNamespacedDeployment({
      namespace: 'cp-apps',
      body: {
        metadata: { name: 'web' },
        spec: { replicas: 2, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'web', image: 'mailcluster/node:0.1.0' }] } } },
      },
    });
    // No scheduler and no node here: the pods exist (Pending), which is the controllers' part.
    const pods = await eventually('2 pods of Deployment web', 30_000, async () => {
      const list = await core.listNamespacedPod({ namespace: 'cp-apps', labelSelector: 'app=web' });
      return list.items.length === 2 ? list.items : undefined;
    });
    assert.ok(pods.every((p) => p.metadata?.ownerReferences?.[0]?.kind === 'ReplicaSet'));
  });

  it('enforces RBAC for a kubeconfig of another identity', async () => {
    const path = cp!.createKubeconfig({ name: 'nobody', user: 'nobody', groups: ['mailcluster:test'] });
    const { core } = clients(path);
    await assert.rejects(core.listNamespacedSecret({ namespace: 'default' }), (err: { code?: number }) => err.code === 403);
  });

  it('restarts the API server on the same address, with its data', async () => {
    const before = cp!.pids();
    const { core } = clients(cp!.kubeconfigPath);
    await cp!.restartApiServer();
    const after = cp!.pids();
    assert.notEqual(after.kubeApiserver, before.kubeApiserver);
    assert.ok(!alive(before.kubeApiserver), 'the old API server exited');
    assert.equal(after.etcd, before.etcd);
    const cm = await core.readNamespacedConfigMap({ name: 'greeting', namespace: 'cp-basic' });
    assert.equal(cm.data?.hello, 'world');
    // The controller-manager reconnects: garbage collection works again.
    const owner = await core.createNamespacedConfigMap({ namespace: 'cp-gc', body: { metadata: { name: 'owner2' } } });
    await core.createNamespacedConfigMap({
      namespace: 'cp-gc',
      body: { metadata: { name: 'owned2', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner2', uid: owner.metadata!.uid! }] } },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner2', namespace: 'cp-gc', propagationPolicy: 'Background' });
    await eventually('owned2 to be collected after the restart', 45_000, async () => {
      const list = await core.listNamespacedConfigMap({ namespace: 'cp-gc' });
      return !list.items.some((c) => c.metadata?.name === 'owned2');
    });
  });

  it('stop() leaves no process behind', async () => {
    const pids = cp!.pids();
    await cp!.stop();
    for (const [name, pid] of Object.entries(pids)) assert.ok(!alive(pid), `${name} (pid ${pid}) still running`);
  });
});

describe('control-plane processes whose parent dies', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const children: Array<ReturnType<typeof spawn>> = [];

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    // Whatever a failed test left running in its dir.
    for (const dir of dirs) await stopControlPlaneInDir(dir);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function startFixture(mode: 'attached' | 'detached'): Promise<{ child: ReturnType<typeof spawn>; dir: string; pids: Record<string, number> }> {
    const dir = mkdtempSync(join(tmpdir(), `mailcluster-cp-${mode}-`));
    dirs.push(dir);
    const fixture = fileURLToPath(new URL('./start-child.fixture.ts', import.meta.url));
    const child = spawn(process.execPath, [fixture, dir, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]);
      });
      child.once('exit', (code) => reject(new Error(`fixture exited (${code}) before printing its pids`)));
    });
    return { child, dir, pids: JSON.parse(line) as Record<string, number> };
  }

  it('ends its etcd and kube-apiserver when the parent is SIGKILLed', async () => {
    const { child, pids } = await startFixture('attached');
    // Give the API server a moment to be well into its start.
    await new Promise((r) => setTimeout(r, 1000));
    for (const [name, pid] of Object.entries(pids)) assert.ok(alive(pid), `${name} is running before the parent dies`);
    child.kill('SIGKILL');
    await eventually('every component to exit', 15_000, async () => Object.values(pids).every((pid) => !alive(pid)));
  });

  it('leaves detached components running, and stopControlPlaneInDir ends them', async () => {
    const { child, dir, pids } = await startFixture('detached');
    await eventually('the parent to exit', 10_000, async () => child.exitCode !== null);
    await new Promise((r) => setTimeout(r, 500));
    for (const [name, pid] of Object.entries(pids)) assert.ok(alive(pid), `${name} outlives its parent`);
    const ended = await stopControlPlaneInDir(dir);
    assert.deepEqual([...ended].sort(), Object.values(pids).sort());
    await eventually('every component to exit', 15_000, async () => Object.values(pids).every((pid) => !alive(pid)));
  });
});
