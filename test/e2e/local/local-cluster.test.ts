// `mailcluster local up` end to end, as `npm start` runs it (root): the real CLI in its own
// process starts the control plane, the real node (kubelet, containerd and runc in a network
// namespace), installs the operator with the chart from its image, applies
// examples/mailcluster.yaml and prints Addr[0]; mail goes in there; `local status` reports the
// cluster; `local down` stops it and leaves nothing: no process, namespace, mount or cgroup.
// The machine holds one kubelet node at a time: the run's shared cluster is stopped first.
// Binds 127.43.0.0/16 on the host (load balancers).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import yaml from 'js-yaml';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { UpState } from '../../../local/src/cli.ts';
import { nodeId } from '../../../local/src/node/config.ts';
import { kubeletSuitesWanted, stopSharedLocalCluster } from '../../support/local-cluster.ts';
import { swaks } from '../../support/swaks.ts';
import { waitUntil } from '../../support/processes.ts';

const LB_RANGE = '127.43.0.0/16';
const cli = join(import.meta.dirname, '..', '..', '..', 'bin', 'mailcluster.js');
const example = yaml.load(readFileSync(join(import.meta.dirname, '..', '..', '..', 'examples', 'mailcluster.yaml'), 'utf8')) as {
  metadata: { name: string; namespace?: string }; spec: { replicas: number; relayDomains: string[]; service: { port: number } };
};

/** Runs the CLI without blocking the event loop (so the `up` child is reaped when it exits). */
function cliRun(args: string[], timeout: number): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Processes whose command line or environment names `dir`. */
function processesUsing(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const text = readFileSync(`/proc/${entry}/cmdline`, 'utf8') + readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (text.includes(dir)) found.push(Number(entry));
    } catch { /* gone or not ours */ }
  }
  return found;
}

(kubeletSuitesWanted() ? describe : describe.skip)('local mode: `mailcluster local up` with a real kubelet, the chart\'s operator, the example MailCluster, and `local down` (root)', function () {
  this.timeout(120_000);
  let dir: string;
  let up: ChildProcess | undefined;
  let upOutput = '';
  let state: UpState;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let coordination: CoordinationV1Api;

  before(async function () {
    this.timeout(1_800_000); // a cold build of the node's programs and the images happens here once
    await stopSharedLocalCluster();
    dir = mkdtempSync(join(tmpdir(), 'mailcluster-local-e2e-'));
    const started = Date.now();
    // The real CLI, as a user runs it: in the foreground, in its own process; the node is the kubelet (root).
    up = spawn(process.execPath, [cli, 'local', 'up', '--dir', dir, '--lb-range', LB_RANGE, '--etcd-no-fsync'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d) => { upOutput += d; });
    up.stderr!.on('data', (d) => { upOutput += d; });
    await waitUntil('`local up` to report the cluster up', async () => {
      if (up!.exitCode !== null) throw new Error(`local up exited ${up!.exitCode}:\n${upOutput}`);
      return upOutput.includes('local Kubernetes is up');
    }, { timeoutMs: 1_780_000, intervalMs: 200, abort: () => (up!.exitCode !== null ? `local up exited ${up!.exitCode}:\n${upOutput}` : undefined) })
      .catch((err) => { throw new Error(`${(err as Error).message}\n${upOutput}`); });
    console.log(`      local up to a Ready example MailCluster: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    state = JSON.parse(readFileSync(join(dir, 'local-up.json'), 'utf8')) as UpState;
    assert.equal(state.pid, up.pid);
    assert.match(upOutput, new RegExp(`export KUBECONFIG=${state.kubeconfig}`));
    const kc = new KubeConfig();
    kc.loadFromFile(state.kubeconfig);
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    coordination = kc.makeApiClient(CoordinationV1Api);
  });

  after(async function () {
    this.timeout(120_000);
    const child = up;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('registers a Ready node with a Lease heartbeat', async () => {
    const node = await core.readNode({ name: 'local-node' });
    assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.match(upOutput, /pods run on a kubelet in network namespace mailcluster-[0-9a-f]{8}/);
    // the kubelet's lease controller makes its Lease on a loop of its own, after registering the node
    let holder: string | undefined;
    await waitUntil('the node\'s Lease in kube-node-lease', async () => {
      holder = (await coordination.readNamespacedLease({ name: 'local-node', namespace: 'kube-node-lease' }).catch(() => undefined))?.spec?.holderIdentity;
      return holder !== undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.equal(holder, 'local-node');
  });

  it('runs examples/mailcluster.yaml Ready under the chart\'s operator, and its Addr[0] (printed) accepts mail', async () => {
    const namespace = example.metadata.namespace ?? 'default';
    const mc = await custom.getNamespacedCustomObject({ group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters', namespace, name: example.metadata.name }) as {
      status: { address: string; readyReplicas: number; conditions: Array<{ type: string; status: string }> };
    };
    assert.equal(mc.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(mc.status.readyReplicas, example.spec.replicas);
    assert.ok(mc.status.address.startsWith('127.43.'), `Addr[0] ${mc.status.address} in ${LB_RANGE}`);
    assert.ok(upOutput.includes(`Addr[0] = ${mc.status.address}:${example.spec.service.port}`), 'local up printed Addr[0]');
    const operators = (await core.listNamespacedPod({ namespace: 'mailcluster-system' })).items;
    assert.ok(operators.some((p) => p.spec?.containers[0].image === 'mailcluster/operator:0.1.0' && p.status?.phase === 'Running'), 'the operator runs from its image');
    const r = await swaks({ server: `${mc.status.address}:${example.spec.service.port}`, from: 'someone@isp.example', to: `user@${example.spec.relayDomains[0]}`, body: 'local up\r\n', timeoutSeconds: 20 });
    assert.equal(r.lastCode, 250, r.transcript);
  });

  it('reports status, and `local down` stops everything, leaving no process, namespace, mount or cgroup', async function () {
    this.timeout(150_000);
    const status = await cliRun(['local', 'status', '--dir', dir], 30_000);
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /^up: pid \d+/);
    assert.match(status.stdout, /nodes: 1 \(1 ready\)/);
    assert.match(status.stdout, new RegExp(`LoadBalancer ${example.metadata.namespace ?? 'default'}/${example.metadata.name}: 127\\.43\\.`));
    assert.ok(processesUsing(dir).length > 0, 'the cluster runs processes before down');
    const netns = `mailcluster-${nodeId(dir)}`;
    assert.ok(existsSync(`/run/netns/${netns}`), `namespace ${netns} while up`);

    const down = await cliRun(['local', 'down', '--dir', dir], 120_000);
    assert.equal(down.status, 0, down.stderr);
    assert.match(down.stdout, /stopped\./);
    const child = up!;
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    assert.equal(child.exitCode, 0, `up ended by itself:\n${upOutput.slice(-3000)}`);
    assert.ok(!existsSync(join(dir, 'local-up.json')));
    await waitUntil('no process of the cluster left', () => processesUsing(dir).length === 0, { timeoutMs: 10_000, intervalMs: 100 })
      .catch(() => assert.deepEqual(processesUsing(dir), []));
    assert.ok(!existsSync(`/run/netns/${netns}`), `namespace ${netns} removed`);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), `no mount left under ${dir}`);
    assert.ok(!existsSync(`/sys/fs/cgroup/memory/mailcluster-${nodeId(dir)}`), 'the kubelet\'s cgroup root removed');
    const after = await cliRun(['local', 'status', '--dir', dir], 30_000);
    assert.equal(after.status, 3);
    assert.match(after.stdout, /^down:/);
  });
});
