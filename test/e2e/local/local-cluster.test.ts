// Local mode end to end on its own cluster (pods 127.42.0.0/16, load balancers 127.43.0.0/16),
// started with the real `mailcluster local up` and stopped with `mailcluster local down`:
// real etcd, kube-apiserver and kube-controller-manager, the node agent running pods as
// processes, and the LoadBalancer. The tests build on each other, in order.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { UpState } from '../../../local/src/cli.ts';
import { cidrContains, parseCidr } from '../../../local/src/agent/address-range.ts';
import { parseProxyV2Header } from '../../../local/src/loadbalancer/proxy-protocol.ts';

const NS = 'local-e2e';
const podRange = parseCidr('127.42.0.0/16');
const lbRange = parseCidr('127.43.0.0/16');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cli = join(import.meta.dirname, '..', '..', '..', 'bin', 'mailcluster.js');

/** Runs the CLI without blocking the event loop (so the `up` child is reaped when it exits). */
function cliRun(args: string[], timeout: number): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) { last = err; }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

async function http(url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { method, signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: await res.text() };
}

/** Sends `data` over TCP and collects what comes back until the peer closes or goes quiet. */
function tcpExchange(host: string, port: number, data: string): Promise<{ reply: Buffer; local: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    let local = { address: '', port: 0 };
    const timer = setTimeout(() => socket.end(), 700);
    socket.on('connect', () => { local = { address: socket.localAddress!, port: socket.localPort! }; socket.write(data); });
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('close', () => { clearTimeout(timer); resolve({ reply: Buffer.concat(chunks), local }); });
  });
}

const ready = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** Processes whose command line or environment names `dir` (control plane and pods). */
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

describe('local mode: `mailcluster local up`, the node agent and the LoadBalancer on a real control plane', function () {
  this.timeout(120_000);
  let dir: string;
  let up: ChildProcess | undefined;
  let upOutput = '';
  let state: UpState;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  const kubectl = (args: string[], input?: string) => new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const child = execFile(state.kubectl, args, { env: { ...process.env, KUBECONFIG: state.kubeconfig }, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`)); else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
  const echoPods = async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=echo' })).items.filter((p) => !p.metadata?.deletionTimestamp);

  before(async function () {
    this.timeout(900_000); // a cold control-plane build happens here once
    dir = mkdtempSync(join(tmpdir(), 'mailcluster-local-e2e-'));
    const started = Date.now();
    // The real CLI, as a user runs it: in the foreground, in its own process.
    up = spawn(process.execPath, [cli, 'local', 'up', '--node', 'agent', '--dir', dir, '--pod-range', '127.42.0.0/16', '--lb-range', '127.43.0.0/16', '--etcd-no-fsync'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d) => { upOutput += d; });
    up.stderr!.on('data', (d) => { upOutput += d; });
    await waitUntil('`local up` to report the cluster up', async () => {
      if (up!.exitCode !== null) throw new Error(`local up exited ${up!.exitCode}:\n${upOutput}`);
      return upOutput.includes('local Kubernetes is up');
    }, 880_000, 200).catch((err) => { throw new Error(`${(err as Error).message}\n${upOutput}`); });
    console.log(`      local up took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    state = JSON.parse(readFileSync(join(dir, 'local-up.json'), 'utf8')) as UpState;
    assert.equal(state.pid, up.pid);
    assert.match(upOutput, new RegExp(`export KUBECONFIG=${state.kubeconfig}`));
    const kc = new KubeConfig();
    kc.loadFromFile(state.kubeconfig);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await waitUntil('the default ServiceAccount', () => core.readNamespacedServiceAccount({ name: 'default', namespace: NS }));
  });

  after(async function () {
    this.timeout(60_000);
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
    assert.ok(Number(node.status?.allocatable?.cpu) >= 1);
    const { stdout } = await kubectl(['get', 'lease', '-n', 'kube-node-lease', 'local-node', '-o', 'jsonpath={.spec.holderIdentity}']);
    assert.equal(stdout, 'local-node');
  });

  const latencies: number[] = [];

  it('runs a Deployment of mailcluster/echo: each pod on its own IP, probed Ready, serving its ConfigMap file', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'echo-content' }, data: { 'message.txt': 'v1' } } });
    const deployment = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo', namespace: NS },
      spec: {
        replicas: 3, selector: { matchLabels: { app: 'echo' } },
        template: {
          metadata: { labels: { app: 'echo' } },
          spec: {
            terminationGracePeriodSeconds: 3,
            containers: [{
              name: 'echo', image: 'mailcluster/echo:0.1.0',
              ports: [{ name: 'http', containerPort: 8080 }, { name: 'tcp', containerPort: 9000 }],
              env: [
                { name: 'ECHO_FILE', value: '/etc/echo/message.txt' },
                { name: 'ECHO_TCP_PORT', value: '9000' },
                { name: 'MY_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
              ],
              volumeMounts: [{ name: 'content', mountPath: '/etc/echo' }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
              livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2, failureThreshold: 3 },
            }],
            volumes: [{ name: 'content', configMap: { name: 'echo-content' } }],
          },
        },
      },
    };
    const applied = Date.now();
    await kubectl(['apply', '-f', '-'], JSON.stringify(deployment));
    const seen = new Map<string, number>();
    await waitUntil('3 echo pods Ready', async () => {
      for (const p of await echoPods()) if (ready(p) && !seen.has(p.metadata!.name!)) seen.set(p.metadata!.name!, Date.now() - applied);
      return seen.size >= 3;
    }, 60_000, 50);
    latencies.push(...seen.values());
    const pods = await echoPods();
    const ips = pods.map((p) => p.status!.podIP!);
    assert.equal(new Set(ips).size, 3, `distinct pod IPs: ${ips}`);
    for (const p of pods) {
      assert.ok(cidrContains(podRange, p.status!.podIP!), `${p.status!.podIP} in 127.42.0.0/16`);
      assert.equal(p.spec?.nodeName, 'local-node');
      assert.equal(p.status?.phase, 'Running');
      assert.equal(p.status?.hostIP, '127.0.0.1');
      const echo = JSON.parse((await http(`http://${p.status!.podIP}:8080/hello`)).body);
      assert.equal(echo.pod, p.metadata!.name);
      assert.equal(echo.server, p.status!.podIP, 'the pod listens on its own address');
      assert.equal((await http(`http://${p.status!.podIP}:8080/file`)).body, 'v1');
    }
  });

  it('propagates a ConfigMap change into the pod within a second (atomic ..data swap)', async () => {
    const pod = (await echoPods())[0];
    const mount = join(dir, 'node', 'pods', `${NS}_${pod.metadata!.name}_${pod.metadata!.uid}`, 'root', 'etc', 'echo');
    const before = readlinkSync(join(mount, '..data'));
    assert.equal(readlinkSync(join(mount, 'message.txt')), '..data/message.txt');
    const changed = Date.now();
    await core.patchNamespacedConfigMap({ name: 'echo-content', namespace: NS, body: [{ op: 'replace', path: '/data/message.txt', value: 'v2' }] });
    const elapsed = await waitUntil('the new file content', async () => readFileSync(join(mount, 'message.txt'), 'utf8') === 'v2' && Date.now() - changed, 5000, 10);
    console.log(`      ConfigMap change visible in the pod after ${elapsed} ms`);
    assert.ok(elapsed < 1000, `visible after ${elapsed} ms`);
    assert.notEqual(readlinkSync(join(mount, '..data')), before);
    assert.equal((await http(`http://${pod.status!.podIP}:8080/file`)).body, 'v2');
  });

  it('restarts a killed container (restartCount 1), keeping the pod IP', async () => {
    const pod = (await echoPods())[0];
    const status = pod.status!.containerStatuses![0];
    const pid = Number(status.containerID!.replace('local://', ''));
    assert.ok(pid > 0);
    process.kill(pid, 'SIGKILL');
    const restarted = await waitUntil('restartCount 1 and Ready again', async () => {
      const p = await core.readNamespacedPod({ name: pod.metadata!.name!, namespace: NS });
      const s = p.status?.containerStatuses?.[0];
      return s?.restartCount === 1 && s.ready && ready(p) && p;
    }, 20_000);
    const s = restarted.status!.containerStatuses![0];
    assert.equal(s.lastState?.terminated?.exitCode, 137);
    assert.notEqual(s.containerID, status.containerID);
    assert.equal(restarted.status!.podIP, pod.status!.podIP);
  });

  let lbIP = '';
  let lbProxyIP = '';

  it('gives a LoadBalancer Service its own address and proxies only to ready pods', async () => {
    const service = (name: string, annotations: Record<string, string>, ports: object[]) => ({
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS, annotations },
      spec: { type: 'LoadBalancer', selector: { app: 'echo' }, ports },
    });
    await kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        service('echo', {}, [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'tcp', port: 9000, targetPort: 'tcp' }]),
        service('echo-proxied', { 'mailcluster.io/proxy-protocol': 'v2' }, [{ name: 'tcp', port: 9001, targetPort: 9000 }]),
      ],
    }));
    const ingressOf = async (name: string) => (await core.readNamespacedService({ name, namespace: NS })).status?.loadBalancer?.ingress?.[0]?.ip;
    lbIP = await waitUntil('a LoadBalancer address', () => ingressOf('echo'));
    lbProxyIP = await waitUntil('a LoadBalancer address', () => ingressOf('echo-proxied'));
    assert.ok(cidrContains(lbRange, lbIP) && cidrContains(lbRange, lbProxyIP) && lbIP !== lbProxyIP, `${lbIP} ${lbProxyIP}`);

    const pods = await echoPods();
    const names = new Set(pods.map((p) => p.metadata!.name!));
    const answering = await waitUntil('every pod answering through the load balancer', async () => {
      const got = new Set<string>();
      for (let i = 0; i < 6; i++) got.add(JSON.parse((await http(`http://${lbIP}/`)).body).pod);
      return got.size === 3 && got;
    }, 15_000);
    assert.deepEqual([...answering].sort(), [...names].sort());

    // Make one pod fail its readiness probe: it leaves the EndpointSlice, and the proxy with it.
    const victim = pods[1];
    await http(`http://${victim.status!.podIP}:8080/unready`, 'POST');
    await waitUntil('the pod not Ready', async () => !ready(await core.readNamespacedPod({ name: victim.metadata!.name!, namespace: NS })), 15_000);
    await sleep(200); // the proxy follows the pod event
    const after = new Set<string>();
    for (let i = 0; i < 9; i++) after.add(JSON.parse((await http(`http://${lbIP}/`)).body).pod);
    assert.ok(!after.has(victim.metadata!.name!), `no request reached the unready pod: ${[...after]}`);
    assert.equal(after.size, 2);
    await http(`http://${victim.status!.podIP}:8080/ready`, 'POST');
  });

  it('sends a PROXY v2 header only when the Service is annotated', async () => {
    const plain = await tcpExchange(lbIP, 9000, 'hello');
    assert.equal(plain.reply.toString(), 'hello');
    const proxied = await tcpExchange(lbProxyIP, 9001, 'hello');
    const header = parseProxyV2Header(proxied.reply);
    assert.ok(header, `a PROXY v2 header first: ${proxied.reply.toString('hex')}`);
    assert.deepEqual(
      { src: header.sourceAddress, sport: header.sourcePort, dst: header.destinationAddress, dport: header.destinationPort },
      { src: proxied.local.address, sport: proxied.local.port, dst: lbProxyIP, dport: 9001 },
    );
    assert.equal(proxied.reply.subarray(header.length).toString(), 'hello');
  });

  it('provisions a PersistentVolume for a claim, mounted into a pod, probed by exec', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
        {
          apiVersion: 'v1', kind: 'Pod', metadata: { name: 'writer', namespace: NS },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{
              name: 'sh', image: 'mailcluster/host', command: ['sh', '-c'],
              args: ['echo "$POD" > "$MAILCLUSTER_ROOT/data/written" && exec sleep 600'],
              env: [{ name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
              readinessProbe: { exec: { command: ['sh', '-c', 'test -s "$MAILCLUSTER_ROOT/data/written"'] }, periodSeconds: 1 },
            }],
            volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
          },
        },
      ],
    }));
    const pod = await waitUntil('the writer pod Ready', async () => {
      const p = await core.readNamespacedPod({ name: 'writer', namespace: NS });
      return ready(p) && p;
    }, 30_000);
    assert.ok(pod);
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: 'data', namespace: NS });
    assert.equal(pvc.status?.phase, 'Bound');
    const pv = await core.readPersistentVolume({ name: pvc.spec!.volumeName! });
    assert.equal(readFileSync(join(pv.spec!.hostPath!.path, 'written'), 'utf8'), 'writer\n');
    await core.deleteNamespacedPod({ name: 'writer', namespace: NS });
    await waitUntil('the writer pod gone', async () => {
      try { await core.readNamespacedPod({ name: 'writer', namespace: NS }); return false; } catch { return true; }
    }, 15_000);
    assert.equal(readFileSync(join(pv.spec!.hostPath!.path, 'written'), 'utf8'), 'writer\n', 'the claim outlives the pod');

    // Deleting the claim releases the volume: the agent deletes the PV and its directory.
    await core.deleteNamespacedPersistentVolumeClaim({ name: 'data', namespace: NS });
    await waitUntil('the released volume and its directory gone', async () => {
      try { await core.readPersistentVolume({ name: pv.metadata!.name! }); return false; } catch { /* gone */ }
      return !existsSync(pv.spec!.hostPath!.path);
    }, 20_000);
  });

  it('restarts a container that fails its liveness probe (exec), keeping its emptyDir', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'lively' },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: 'sh', image: 'mailcluster/host', command: ['sh', '-c'],
            args: ['echo run >> "$MAILCLUSTER_ROOT/state/runs" && touch "$MAILCLUSTER_ROOT/state/alive" && exec sleep 600'],
            volumeMounts: [{ name: 'state', mountPath: '/state' }],
            livenessProbe: { exec: { command: ['sh', '-c', 'test -e "$MAILCLUSTER_ROOT/state/alive"'] }, periodSeconds: 1, failureThreshold: 2 },
          }],
          volumes: [{ name: 'state', emptyDir: {} }],
        },
      },
    });
    const pod = await waitUntil('the pod running', async () => {
      const p = await core.readNamespacedPod({ name: 'lively', namespace: NS });
      return p.status?.containerStatuses?.[0]?.state?.running && p;
    }, 30_000);
    const state = join(dir, 'node', 'pods', `${NS}_lively_${pod.metadata!.uid}`, 'root', 'state');
    await waitUntil('the alive file', async () => existsSync(join(state, 'alive')));
    rmSync(join(state, 'alive'));
    const restarted = await waitUntil('restartCount 1 after the liveness failure', async () => {
      const p = await core.readNamespacedPod({ name: 'lively', namespace: NS });
      const s = p.status?.containerStatuses?.[0];
      return s?.restartCount === 1 && s.state?.running && p;
    }, 20_000);
    assert.ok(restarted);
    assert.equal(readFileSync(join(state, 'runs'), 'utf8'), 'run\nrun\n', 'the emptyDir survives the container restart');
    await core.deleteNamespacedPod({ name: 'lively', namespace: NS });
  });

  it('garbage-collects the pods of a deleted Deployment, stopping their processes', async () => {
    const pids = (await echoPods()).map((p) => Number(p.status!.containerStatuses![0].containerID!.replace('local://', '')));
    await apps.deleteNamespacedDeployment({ name: 'echo', namespace: NS });
    await waitUntil('no echo pods left', async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=echo' })).items.length === 0, 30_000);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), `process ${pid} is gone`);
  });

  it('measures pod start latency (apply to Ready) over several pods', async () => {
    const deployment = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'latency', namespace: NS },
      spec: {
        replicas: 5, selector: { matchLabels: { app: 'latency' } },
        template: {
          metadata: { labels: { app: 'latency' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'echo', image: 'mailcluster/echo', readinessProbe: { httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 1 } }],
          },
        },
      },
    };
    const applied = Date.now();
    await kubectl(['apply', '-f', '-'], JSON.stringify(deployment));
    const seen = new Map<string, number>();
    await waitUntil('5 pods Ready', async () => {
      for (const p of (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=latency' })).items) {
        if (ready(p) && !seen.has(p.metadata!.name!)) seen.set(p.metadata!.name!, Date.now() - applied);
      }
      return seen.size >= 5;
    }, 60_000, 50);
    const all = [...latencies, ...seen.values()].sort((a, b) => a - b);
    const median = all[Math.floor(all.length / 2)];
    console.log(`      pod start latency (apply to Ready), ${all.length} pods: median ${median} ms, min ${all[0]} ms, max ${all.at(-1)} ms`);
    assert.ok(median < 15_000);
    await apps.deleteNamespacedDeployment({ name: 'latency', namespace: NS });
  });

  it('reports status, and `local down` stops everything, leaving no process behind', async function () {
    this.timeout(90_000);
    const status = await cliRun(['local', 'status', '--dir', dir], 30_000);
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /^up: pid \d+/);
    assert.match(status.stdout, /nodes: 1 \(1 ready\)/);
    assert.ok(processesUsing(dir).length > 0, 'the cluster runs processes before down');

    const down = await cliRun(['local', 'down', '--dir', dir], 80_000);
    assert.equal(down.status, 0, down.stderr);
    assert.match(down.stdout, /stopped\./);
    const child = up!;
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    assert.equal(child.exitCode, 0, `up ended by itself:\n${upOutput}`);
    assert.ok(!existsSync(join(dir, 'local-up.json')));
    const deadline = Date.now() + 10_000;
    while (processesUsing(dir).length > 0 && Date.now() < deadline) await sleep(100);
    assert.deepEqual(processesUsing(dir), []);
    const after = await cliRun(['local', 'status', '--dir', dir], 30_000);
    assert.equal(after.status, 3);
    assert.match(after.stdout, /^down:/);
  });
});
