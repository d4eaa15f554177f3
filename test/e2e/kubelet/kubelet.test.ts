// Local mode with a real node (startLocalCluster({ node: 'kubelet' })): kubelet v1.36.3,
// containerd 2.2 and Debian's runc in a network namespace local mode creates, running the
// project's own images. The chart installs the operator from its image; a MailCluster of 3
// becomes Ready; mail goes in at Addr[0] (the host LoadBalancer on 127.47.x) and out to a real
// Postfix smtp-sink (inside the namespace, found through dnsmasq's MX); `kubectl logs` shows
// the node's pino lines and `kubectl exec` runs in its container; scaling 3 -> 5 -> 2
// converges (and prints how long until every node serves the new peer list: per event, from
// `kubectl scale` on a settled cluster to the last node's log line; each event then waits
// until the scaled-down pods and claims are gone);
// a node killed with kill -9 and one killed by its liveness probe come back with their spools;
// `kubectl mailcluster` reaches the nodes through the API server's pod proxy.
// At the end nothing is left: processes, namespace, bridge, mounts, cgroups.
// Binds 127.47.0.0/16 on the host, 10.244.0.0/16 and 10.0.0.0/16 only inside the namespace.
// Needs root. `npm test` runs it by default (MAILCLUSTER_KUBELET_E2E=0 skips it; =quick leaves
// out the liveness step, about 45 s of probe failures and grace), and MAILCLUSTER_KUBELET_SCALE_EVENTS=10
// measures 10 scale events instead of 2 (MAILCLUSTER_KUBELET_TIMELINE=<dir> prints each event's
// stages and keeps the logs there: timeline.ts). Run under the e2e lock:
//   MAILCLUSTER_KUBELET_E2E=1 MAILCLUSTER_KUBELET_SCALE_EVENTS=10 flock /tmp/mailcluster-e2e.lock node_modules/.bin/node node_modules/mocha/bin/mocha.js test/e2e/kubelet/kubelet.test.ts
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync, type ChildProcess } from 'node:child_process';
import yaml from 'js-yaml';
import type { LocalCluster } from '../../../local/src/index.ts';
import { ensureHelm, helmOk, type Helm } from '../../../local/src/tools/helm.ts';
import type { KubeletNode } from '../../../local/src/node/node.ts';
import { dnsmasqArgs } from '../../support/dnsmasq.ts';
import { atTeardown } from '../../support/hooks.ts';
import { makeTempDir, removeTempDir, spawnTracked, stopChild, waitUntil } from '../../support/processes.ts';
import { parseSinkCounters, smtpSinkArgs } from '../../support/smtp-sink.ts';
import { swaks } from '../../support/swaks.ts';
import { kubectlPlugin } from '../../support/kubectl-plugin.ts';
import { kubeletSuitesWanted, startTestLocalCluster, stopSharedLocalCluster } from '../../support/local-cluster.ts';
import { nodeMetric } from '../operator/harness.ts';
import { Timeline } from './timeline.ts';
import { percentile } from '../../bench/stats.ts';

const chartDir = fileURLToPath(new URL('../../../helm/mailcluster-operator', import.meta.url));
const LB_RANGE = '127.47.0.0/16';
const NS = 'kubelet-e2e';
const OPERATOR_NS = 'mailcluster-system';
const MC = 'mail';
// peers inside the node's namespace, on the bridge's spare addresses (DEFAULT_NETWORK)
const SINK_IP = '10.244.0.2';
const DNS_IP = '10.244.0.3';
const BLACKHOLE_IP = '10.244.0.4';
const SINK_PORT = 2526;

interface Obj { metadata: { name: string; uid?: string; deletionTimestamp?: string; labels?: Record<string, string> }; spec?: any; status?: any }

// Default on as root (npm test's set-up installs the Debian tools; Go builds kubelet and
// containerd once, cached); MAILCLUSTER_KUBELET_E2E=0 skips it, =quick leaves out the
// liveness step (a frozen node: about 45 s of probe failures and the probe's grace period).
const mode = process.env.MAILCLUSTER_KUBELET_E2E ?? 'default';
const wanted = kubeletSuitesWanted();
const full = mode !== 'quick';

(wanted ? describe : describe.skip)('local mode with a real kubelet (containerd + runc in a network namespace; root; MAILCLUSTER_KUBELET_E2E=0 skips, =quick leaves out the liveness step)', function () {
  this.timeout(30 * 60_000);
  let dir: string;
  let cluster: LocalCluster | undefined;
  let node: KubeletNode;
  let helm: Helm;
  let sink: ChildProcess | undefined;
  let dns: ChildProcess | undefined;
  let sinkMessages = 0;
  let address = '';
  const scaleSamples: number[] = [];
  /** One per scale event: until the last node serves the new peer list. */
  const eventSamples: number[] = [];
  const afterWriteSamples: number[] = [];
  const configMapSeenAt = new Map<string, number>();
  // MAILCLUSTER_KUBELET_TIMELINE=<dir>: each scale event's stages printed, and the marks, the
  // operator's and the node programs' logs kept in <dir> (where the seconds go)
  const timelineDir = process.env.MAILCLUSTER_KUBELET_TIMELINE;
  const timeline = new Timeline();

  const kubectl = async (args: string[], input?: string, timeoutMs = 60_000): Promise<string> =>
    (await cluster!.kubectl(args, { ...(input !== undefined ? { input } : {}), timeoutMs })).stdout;
  const getJson = async <T = Obj>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
  const nodePods = async () => (await getJson<{ items: Obj[] }>(['get', 'pods', '-n', NS, '-l', `mailcluster.io/cluster=${MC}`])).items
    .filter((p) => !p.metadata.deletionTimestamp);
  const mailCluster = () => getJson(['get', 'mailcluster', MC, '-n', NS]);
  const condition = (o: Obj, type: string) => (o.status?.conditions as Array<{ type: string; status: string; message?: string }> | undefined)?.find((c) => c.type === type);

  /** The messages a node's spool holds (its /metrics, through the node's gateway). */
  const queuedOn = (ip: string): Promise<number> => nodeMetric(node.dial, ip, 'mailcluster_queue_messages', {}, 10_000);

  before(async function () {
    // this suite checks that its own node leaves nothing behind: the machine's one kubelet node is its own
    await stopSharedLocalCluster();
    helm = await ensureHelm();
    dir = makeTempDir('kubelet-e2e');
    const started = Date.now();
    cluster = await startTestLocalCluster({ dir, node: 'kubelet', lbRange: LB_RANGE, controlPlaneLog: (line) => console.log(`      ${line}`) });
    // a SIGTERM to this run (bench:kubelet stopped) skips the after hook: its teardown stops the
    // node all the same (stop() is once only, the after hook's call included)
    const thisCluster = cluster;
    atTeardown(() => thisCluster.stop());
    node = cluster.kubeletNode!;
    console.log(`      local cluster with a kubelet node up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // the MX of relay.test is a real smtp-sink; hold.test's MX answers nothing (mail stays queued)
    const [cmd, args] = node.netnsCommand('/usr/sbin/smtp-sink', smtpSinkArgs(SINK_IP, SINK_PORT, {}));
    sink = spawnTracked(cmd, args);
    let pending = '';
    sink.stdout?.on('data', (chunk: Buffer) => {
      pending = (pending + chunk.toString('latin1')).slice(-200);
      const counters = parseSinkCounters(pending);
      if (counters) sinkMessages = counters.messages;
    });
    const [dcmd, dargs] = node.netnsCommand('/usr/sbin/dnsmasq', dnsmasqArgs(DNS_IP, 53, {
      mx: [{ domain: 'relay.test', host: 'mx.sink.test', preference: 10 }, { domain: 'hold.test', host: 'mx.hole.test', preference: 10 }],
      a: [{ name: 'mx.sink.test', ip: SINK_IP }, { name: 'mx.hole.test', ip: BLACKHOLE_IP }],
    }));
    dns = spawnTracked(dcmd, dargs);
    dns.stdout?.resume();
    dns.stderr?.resume();
    await waitUntil('smtp-sink inside the namespace', async () => {
      const s = await node.dial({ address: SINK_IP, port: SINK_PORT }).catch(() => undefined);
      s?.destroy();
      return s !== undefined;
    }, { timeoutMs: 20_000, intervalMs: 200 });
  });

  after(async function () {
    this.timeout(180_000);
    timeline.stop();
    if (timelineDir && cluster) {
      mkdirSync(timelineDir, { recursive: true });
      writeFileSync(join(timelineDir, 'marks.json'), JSON.stringify(timeline.marks));
      spawnSync('cp', ['-r', node.layout.logs, join(timelineDir, 'node-logs')]);
      spawnSync('sh', ['-c', `cp -r /var/log/pods ${join(timelineDir, 'pods')}`]);
    }
    if (sink) await stopChild(sink, 'SIGTERM', 3000);
    if (dns) await stopChild(dns, 'SIGTERM', 3000);
    if (cluster) {
      const netns = node?.network.netns;
      const pids = cluster.pids();
      await cluster.stop();
      for (const pid of pids) assert.equal(existsSync(`/proc/${pid}`) && !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), false, `pid ${pid} still runs`);
      if (netns) assert.ok(!existsSync(`/run/netns/${netns}`), `namespace ${netns} removed`);
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      assert.ok(!mounts.includes(dir), `no mount left under ${dir}`);
      if (node) assert.ok(!existsSync(join('/sys/fs/cgroup/memory', node.layout.cgroupRoot)), 'kubelet cgroup root removed');
    }
    if (dir) removeTempDir(dir);
  });

  it('registers a Ready node whose InternalIP is on the bridge, running kubelet v1.36.3 on containerd 2.2', async () => {
    const n = await getJson(['get', 'node', node.nodeName]);
    assert.equal(condition(n, 'Ready')?.status, 'True');
    assert.deepEqual(n.status.addresses.find((a: { type: string }) => a.type === 'InternalIP').address, node.network.nodeIP);
    assert.equal(n.status.nodeInfo.kubeletVersion, 'v1.36.3');
    assert.match(n.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/2\.2\./);
  });

  it('installs the operator with the chart, from its image, as uid 10001 on a read-only root', async () => {
    const started = Date.now();
    await helmOk(helm, ['install', 'mailcluster', chartDir, '--create-namespace', '--wait', '--timeout', '240s', '--values', '-'], {
      kubeconfig: cluster!.kubeconfigPath, namespace: OPERATOR_NS, timeoutMs: 300_000,
      input: yaml.dump({ replicaCount: 1, image: { pullPolicy: 'Never' } }),
    });
    // helm's --wait can return before the Deployment's status has caught up: wait for the pod itself
    let pods: Obj[] = [];
    await waitUntil('the operator pod Ready', async () => {
      pods = (await getJson<{ items: Obj[] }>(['get', 'pods', '-n', OPERATOR_NS, '-l', 'app.kubernetes.io/component=operator'])).items;
      return pods.length === 1 && condition(pods[0], 'Ready')?.status === 'True';
    }, { timeoutMs: 120_000, intervalMs: 500 });
    const pod = pods[0];
    assert.match(pod.status.containerStatuses[0].containerID, /^containerd:\/\//);
    const pid = await node.containerPid(pod.status.containerStatuses[0].containerID);
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    console.log(`      helm install to a ready operator pod: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  it('runs a MailCluster of 3 to Ready; mail in at Addr[0] goes out to smtp-sink', async () => {
    await kubectl(['create', 'namespace', NS]);
    const started = Date.now();
    await kubectl(['apply', '-n', NS, '-f', '-'], yaml.dump({
      apiVersion: 'mailcluster.io/v1alpha1',
      kind: 'MailCluster',
      metadata: { name: MC },
      spec: {
        replicas: 3,
        hostname: 'smtp.kubelet.test',
        relayDomains: ['relay.test', 'hold.test'],
        image: 'mailcluster/node:0.1.0',
        service: { type: 'LoadBalancer', port: 25 },
        storage: { size: '100Mi' },
        delivery: { dnsServer: `${DNS_IP}:53`, port: SINK_PORT },
      },
    }));
    await waitUntil('MailCluster Ready with 3 nodes and an address', async () => {
      const mc = await mailCluster();
      address = mc.status?.address ?? '';
      return condition(mc, 'Ready')?.status === 'True' && mc.status?.readyReplicas === 3 && address !== '';
    }, { timeoutMs: 300_000, intervalMs: 1000 }).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${await kubectl(['get', 'pods,pvc,events', '-n', NS, '-o', 'wide']).catch((e) => String(e))}`);
    });
    console.log(`      MailCluster of 3 Ready in ${((Date.now() - started) / 1000).toFixed(1)} s, Addr[0] ${address}`);
    assert.ok(address.startsWith('127.47.'), `Addr[0] ${address} in ${LB_RANGE}`);
    for (const pod of await nodePods()) assert.match(pod.status.podIP, /^10\.244\./);
    // the spool is a local PersistentVolume: the kubelet gave it to the pod's fsGroup
    const claim = await getJson(['get', 'pvc', `${MC}-0-spool`, '-n', NS]);
    const pv = await getJson(['get', 'pv', claim.spec.volumeName]);
    assert.equal(statSync(pv.spec.local.path).gid, 10001, `${pv.spec.local.path} group`);

    const before = sinkMessages;
    const r = await swaks({ server: `${address}:25`, from: 'someone@client.test', to: 'user@relay.test', body: 'through a real kubelet\r\n' });
    assert.equal(r.lastCode, 250, r.transcript);
    await waitUntil('smtp-sink to receive the message', () => sinkMessages > before, { timeoutMs: 60_000, intervalMs: 200 });
  });

  it('kubectl logs shows a node\'s pino lines', async () => {
    const logs = await kubectl(['logs', '-n', NS, `${MC}-0`, '--tail=50']);
    const lines = logs.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 0, `no JSON lines in:\n${logs}`);
    const first = JSON.parse(lines[0]);
    assert.equal(typeof first.level, 'number');
    assert.equal(typeof first.time, 'number');
  });

  it('kubectl exec runs a command in a node\'s container: uid 10001, a read-only root, a writable spool', async () => {
    // through the API server, the kubelet's streaming server and containerd's exec (runc)
    const probe = [
      "const fs = require('fs');",
      "const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };",
      "console.log(JSON.stringify({ uid: process.getuid(), root: code(() => fs.writeFileSync('/app/probe', '')),",
      "  spool: code(() => { fs.writeFileSync('/var/spool/mailcluster/.exec-probe', ''); fs.rmSync('/var/spool/mailcluster/.exec-probe'); }) }));",
    ].join(' ');
    const out = await kubectl(['exec', '-n', NS, `${MC}-0`, '-c', 'node', '--', 'node', '-e', probe]);
    assert.deepEqual(JSON.parse(out.trim()), { uid: 10001, root: 'EROFS', spool: 'ok' });
  });

  /**
   * The peer lists a node logged as applied since `since` (its 'mail node starting' and
   * 'configuration reloaded' lines carry `peers`), with the node's own timestamp: read from the
   * container log the kubelet keeps (CRI format, /var/log/pods/<ns>_<pod>_<uid>/node/*.log), the
   * same lines `kubectl logs` shows, without a kubectl process per pod per poll.
   */
  const appliedPeers = (pod: Obj, since: number): Array<{ time: number; peers: string[]; configMap?: string }> => {
    const dir = join('/var/log/pods', `${NS}_${pod.metadata.name}_${pod.metadata.uid}`, 'node');
    let files: string[];
    try { files = readdirSync(dir).filter((f) => f.endsWith('.log')); } catch { return []; }
    const out: Array<{ time: number; peers: string[]; configMap?: string }> = [];
    for (const f of files) {
      let text = '';
      try { text = readFileSync(join(dir, f), 'utf8'); } catch { continue; }
      for (const line of text.split('\n')) {
        const json = line.indexOf(' {');
        if (json < 0 || !line.includes('"peers"')) continue;
        try {
          const l = JSON.parse(line.slice(json + 1)) as { time?: number; event?: string; result?: string; peers?: string[]; configMap?: string };
          if (typeof l.time !== 'number' || l.time < since || !Array.isArray(l.peers)) continue;
          if (l.event === 'start' || (l.event === 'reload' && l.result === 'ok')) out.push({ time: l.time, peers: l.peers.map((p) => p.split('/')[0]).sort(), ...(l.configMap ? { configMap: l.configMap } : {}) });
        } catch { /* a partial line */ }
      }
    }
    return out.sort((a, b) => a.time - b.time);
  };

  /**
   * Scales and waits until every serving pod has applied the peer list naming exactly the live
   * serving pods, as the node itself logged it (one sample per node: the node's log time minus
   * the time of `kubectl scale`). (The kubelet's projected file is no measure: it lags by its
   * sync period, and after a scale-down back to an earlier list it still names that list.)
   */
  async function scaleTo(replicas: number): Promise<void> {
    const t0 = Date.now();
    await kubectl(['scale', 'mailcluster', MC, '-n', NS, `--replicas=${replicas}`]);
    const servedAt = new Map<string, number>();
    const afterWriteAt = new Map<string, number>();
    await waitUntil(`${replicas} ready nodes, each serving the peer list of all ${replicas}`, async () => {
      const pods = (await nodePods()).filter((p) => p.metadata.labels?.['mailcluster.io/role'] === 'serving');
      const ips = pods.map((p) => p.status?.podIP).filter(Boolean).sort();
      if (pods.length !== replicas || ips.length !== replicas) return false;
      const want = JSON.stringify(ips);
      for (const pod of pods) {
        const name = pod.metadata.name;
        const applied = appliedPeers(pod, t0).find((a) => JSON.stringify(a.peers) === want);
        if (applied) servedAt.set(name, applied.time - t0);
        else servedAt.delete(name);
        // the node names the ConfigMap version it applied (`configmap <ns>/<name>@<rv>`)
        const seen = applied?.configMap ? configMapSeenAt.get(applied.configMap.replace(/^configmap /, '')) : undefined;
        if (applied && seen !== undefined) afterWriteAt.set(name, applied.time - seen);
        else afterWriteAt.delete(name);
      }
      const mc = await mailCluster();
      return servedAt.size === replicas && pods.every((p) => servedAt.has(p.metadata.name) && condition(p, 'Ready')?.status === 'True') &&
        mc.status?.readyReplicas === replicas && condition(mc, 'Ready')?.status === 'True';
    }, { timeoutMs: 420_000, intervalMs: 1000 });
    const samples = [...servedAt.values()];
    scaleSamples.push(...samples);
    eventSamples.push(Math.max(...samples));
    afterWriteSamples.push(...afterWriteAt.values());
    // Settled: the scaled-down pods and their claims are gone too (each claim only after its node
    // reported itself drained). The next event starts from here, so that its figure is its own and
    // not the tail of this one (a pod of the same name cannot be made while the old one terminates).
    await waitUntil(`only the ${replicas} pods and claims left`, async () => {
      const [pods, claims] = await Promise.all([
        getJson<{ items: Obj[] }>(['get', 'pods', '-n', NS, '-l', `mailcluster.io/cluster=${MC}`]),
        getJson<{ items: Obj[] }>(['get', 'pvc', '-n', NS, '-l', `mailcluster.io/cluster=${MC}`]),
      ]);
      return pods.items.length === replicas && claims.items.length === replicas;
    }, { timeoutMs: 120_000, intervalMs: 250 });
    console.log(`      scale to ${replicas}: every node serving the new peer list after ${(Math.max(...samples) / 1000).toFixed(2)} s (per node ${samples.map((s) => (s / 1000).toFixed(2)).join(', ')} s); settled (pods and claims gone) after ${((Date.now() - t0) / 1000).toFixed(2)} s`);
    if (timelineDir) {
      // the container logs of pods a later event deletes go with them: keep this event's
      mkdirSync(timelineDir, { recursive: true });
      spawnSync('cp', ['-r', '/var/log/pods', join(timelineDir, `pods-${eventSamples.length}`)]);
      for (const line of timeline.describe(t0, t0 + Math.max(...samples) + 500)) console.log(`        ${line}`);
      for (const [name, ms] of [...servedAt].sort((a, b) => a[1] - b[1])) console.log(`        +${(ms / 1000).toFixed(2)} ${name} serving`);
    }
  }

  const seconds = (ms: number) => (ms / 1000).toFixed(2);
  it('kubectl scale converges (5, 2, then MAILCLUSTER_KUBELET_SCALE_EVENTS events in all); prints scale event -> every node serving the new peer list', async () => {
    // 5, 2, then 3 and 2 in turn (ending at 2)
    const events = Math.max(2, Number(process.env.MAILCLUSTER_KUBELET_SCALE_EVENTS ?? 2));
    const targets = Array.from({ length: events }, (_, i) => (i === 0 ? 5 : i % 2 === 1 ? 2 : 3));
    if (targets.at(-1) !== 2) targets.push(2);
    // When each ConfigMap version reached a watcher on the host (kubectl get -w): the node's
    // apply time minus this is the node's own part (API watch + reload), without the operator's.
    const watcher = spawnTracked(cluster!.kubectlPath, ['--kubeconfig', cluster!.kubeconfigPath, 'get', 'configmaps', '-n', NS, '-w',
      '--no-headers', '-o', 'custom-columns=NAME:.metadata.name,RV:.metadata.resourceVersion']);
    let pendingLine = '';
    watcher.stdout?.setEncoding('utf8');
    watcher.stdout?.on('data', (chunk: string) => {
      const now = Date.now();
      pendingLine += chunk;
      const lines = pendingLine.split('\n');
      pendingLine = lines.pop()!;
      for (const l of lines) {
        const [name, rv] = l.trim().split(/\s+/);
        if (name && rv && !configMapSeenAt.has(`${NS}/${name}@${rv}`)) configMapSeenAt.set(`${NS}/${name}@${rv}`, now);
      }
    });
    watcher.stderr?.resume();
    if (timelineDir) await timeline.start(cluster!.kubeconfigPath, NS, MC);
    await new Promise((r) => setTimeout(r, 1000));
    try {
      for (const r of targets) await scaleTo(r);
    } finally {
      await stopChild(watcher, 'SIGTERM', 3000);
    }
    const sorted = [...scaleSamples].sort((a, b) => a - b);
    const perEvent = [...eventSamples].sort((a, b) => a - b);
    const own = [...afterWriteSamples].sort((a, b) => a - b);
    console.log(`      scale event -> every node serving the new peer list (the last node's own log line): p50 ${seconds(percentile(perEvent, 50))} s, p95 ${seconds(percentile(perEvent, 95))} s, max ${seconds(perEvent.at(-1)!)} s over ${perEvent.length} events (shared 2-core machine)`);
    console.log(`      scale event -> a node serving the new peer list (per node): p50 ${seconds(percentile(sorted, 50))} s, p95 ${seconds(percentile(sorted, 95))} s, max ${seconds(sorted.at(-1)!)} s over ${sorted.length} node samples in ${targets.length} events`);
    if (own.length) console.log(`      ConfigMap version seen by a host watcher -> node serving it: p50 ${seconds(percentile(own, 50))} s, p95 ${seconds(percentile(own, 95))} s, max ${seconds(own.at(-1)!)} s over ${own.length} node samples`);
    const remaining = (await nodePods()).map((p) => p.metadata.name).sort();
    assert.deepEqual(remaining, [`${MC}-0`, `${MC}-1`]);
  });

  it('a node killed with kill -9 is restarted in place by the kubelet and finds its queue in the spool', async () => {
    const pod = (await nodePods()).find((p) => p.metadata.name === `${MC}-1`)!;
    // mail for hold.test cannot be delivered (its MX answers nothing): it stays in a spool
    // (Addr[0] balances between the nodes: send until this one holds some)
    let queued = 0;
    for (let i = 0; i < 20 && queued === 0; i++) {
      const r = await swaks({ server: `${address}:25`, from: 'someone@client.test', to: `crash${i}@hold.test`, body: `held ${i}\r\n` });
      assert.equal(r.lastCode, 250, r.transcript);
      await waitUntil('the message queued', async () => {
        const pods = await nodePods();
        const counts = await Promise.all(pods.map(async (p) => await queuedOn(p.status.podIP)));
        queued = counts[pods.findIndex((p) => p.metadata.name === `${MC}-1`)];
        return counts.reduce((a, b) => a + b, 0) > i;
      }, { timeoutMs: 30_000, intervalMs: 500 });
    }
    assert.ok(queued > 0, `${MC}-1 holds mail`);
    const restartsBefore = pod.status.containerStatuses[0].restartCount as number;
    const killedAt = Date.now();
    process.kill(await node.containerPid(pod.status.containerStatuses[0].containerID), 'SIGKILL');
    let after: Obj | undefined;
    await waitUntil(`${MC}-1 restarted and Ready`, async () => {
      after = (await nodePods()).find((x) => x.metadata.name === `${MC}-1`);
      return (after?.status?.containerStatuses?.[0]?.restartCount ?? 0) > restartsBefore && condition(after!, 'Ready')?.status === 'True';
    }, { timeoutMs: 120_000, intervalMs: 500 });
    assert.equal(after!.metadata.uid, pod.metadata.uid, 'the same pod (restarted in place, not replaced)');
    const queuedAfter = await queuedOn(after!.status.podIP);
    assert.equal(queuedAfter, queued, 'the restarted node found its queue in the spool');
    console.log(`      kill -9: Ready again after ${((Date.now() - killedAt) / 1000).toFixed(1)} s with its ${queuedAfter} queued message(s)`);
  });

  it('the node\'s own programs killed with -9 (containerd, kubelet, kube-proxy, its gateway) are started again: the node stays Ready, the mail nodes keep running and relaying, a deleted pod is replaced', async () => {
    const program = (name: string) => node.programs().find((p) => p.name === name)!;
    const before = await nodePods();
    const killedAt = Date.now();
    for (const name of ['containerd', 'kubelet', 'kube-proxy', 'node-gateway']) {
      const { pid, restarts } = program(name);
      process.kill(pid, 'SIGKILL');
      await waitUntil(`${name} started again`, async () => program(name).restarts === restarts + 1 && program(name).running && program(name).pid !== pid, { timeoutMs: 30_000, intervalMs: 100 });
    }
    // the kubelet's node Lease renewed after the kills, and the node Ready
    await waitUntil('the node Lease renewed by the new kubelet and the node Ready', async () => {
      const lease = await getJson<{ spec: { renewTime: string } }>(['get', 'lease', node.nodeName, '-n', 'kube-node-lease']);
      const n = await getJson(['get', 'node', node.nodeName]);
      return Date.parse(lease.spec.renewTime) > killedAt && condition(n, 'Ready')?.status === 'True';
    }, { timeoutMs: 90_000, intervalMs: 500 });
    const after = await nodePods();
    assert.deepEqual(after.map((p) => [p.metadata.name, p.metadata.uid, p.status.containerStatuses[0].restartCount]).sort(),
      before.map((p) => [p.metadata.name, p.metadata.uid, p.status.containerStatuses[0].restartCount]).sort(), 'the mail nodes ran on, not restarted');
    // Addr[0] (through the new gateway) still relays to smtp-sink
    const sunk = sinkMessages;
    const r = await swaks({ server: `${address}:25`, from: 'someone@client.test', to: 'after-kill@relay.test', body: 'after the node\'s programs died\r\n' });
    assert.equal(r.lastCode, 250, r.transcript);
    await waitUntil('the message at smtp-sink', async () => sinkMessages > sunk, { timeoutMs: 30_000, intervalMs: 250 });
    // the new kubelet and containerd still end a pod and start its replacement
    const victim = after.find((p) => p.metadata.name === `${MC}-0`)!;
    await kubectl(['delete', 'pod', victim.metadata.name, '-n', NS, '--wait=true', '--timeout=120s'], undefined, 130_000);
    await waitUntil(`${MC}-0 replaced and Ready`, async () => {
      const p = (await nodePods()).find((x) => x.metadata.name === `${MC}-0`);
      return Boolean(p && p.metadata.uid !== victim.metadata.uid && condition(p, 'Ready')?.status === 'True');
    }, { timeoutMs: 120_000, intervalMs: 500 });
    console.log(`      containerd, kubelet, kube-proxy and the gateway killed with -9: all back, a pod replaced, ${((Date.now() - killedAt) / 1000).toFixed(1)} s in all`);
  });

  it('kubectl mailcluster reaches every node through the API server\'s pod proxy: status, and queue list with the admin token', async () => {
    // The path a real cluster gives: the pod IPs are not the host's, so `--via auto` goes
    // through <server>/api/v1/namespaces/NS/pods/NAME:8025/proxy (the API server's egress to
    // the node), with the admin credential in the header the proxy passes on.
    const binDir = join(dir, 'plugin-bin');
    mkdirSync(binDir, { recursive: true });
    const run = kubectlPlugin({ binDir, kubectlPath: cluster!.kubectlPath, kubeconfigPath: cluster!.kubeconfigPath });
    const plugin = (...args: string[]) => run('-n', NS, ...args);
    const pods = await nodePods();
    const queued = new Map(await Promise.all(pods.map(async (p) => [p.metadata.name, await queuedOn(p.status.podIP)] as const)));
    const total = [...queued.values()].reduce((a, b) => a + b, 0);
    assert.ok(total > 0, 'the nodes hold mail for hold.test');
    const status = await plugin('status', '-o', 'json');
    assert.equal(status.code, 0, status.stderr + status.stdout);
    const rows = (JSON.parse(status.stdout) as { nodes: Array<{ node: string; queue: number; error: string | null }> }).nodes;
    assert.deepEqual(rows.map((r) => [r.node, r.error]).sort(), pods.map((p) => [p.metadata.name, null]).sort());
    for (const r of rows) assert.equal(r.queue, queued.get(r.node), `${r.node}'s queue through the proxy`);
    const listed = await plugin('queue', 'list', '-o', 'json');
    assert.equal(listed.code, 0, listed.stderr + listed.stdout);
    const messages = (JSON.parse(listed.stdout) as { nodes: Array<{ node: string; messages: Array<{ recipients: string[] }> }> }).nodes.flatMap((n) => n.messages);
    assert.equal(messages.length, total);
    assert.ok(messages.every((m) => m.recipients.every((r) => r.endsWith('@hold.test'))));
    console.log(`      kubectl mailcluster through the pod proxy: ${rows.length} nodes, ${total} queued message(s) listed`);
  });

  (full ? it : it.skip)('a pod killed by its liveness probe restarts on the probe\'s short grace period and keeps its spool', async () => {
    const pod = (await nodePods()).find((p) => p.metadata.name === `${MC}-0`)!;
    const ip = pod.status.podIP;
    // mail for hold.test cannot be delivered (its MX answers nothing): it stays in the spool
    for (let i = 0; i < 4; i++) {
      const r = await swaks({ server: `${address}:25`, from: 'someone@client.test', to: `user${i}@hold.test`, body: `held ${i}\r\n` });
      assert.equal(r.lastCode, 250, r.transcript);
    }
    let queued = 0;
    await waitUntil(`${MC}-0 to hold mail`, async () => {
      queued = await queuedOn(ip);
      return queued > 0;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const restartsBefore = pod.status.containerStatuses[0].restartCount as number;
    // freeze the node: /healthz stops answering, the liveness probe fails three times and the
    // kubelet kills the container. A frozen node cannot act on the SIGTERM (a running node would
    // drain, handing its mail to a peer), so the kubelet's SIGKILL after the grace period ends
    // it as kill -9 would: what it held must still be in its spool when it comes back.
    const pid = await node.containerPid(pod.status.containerStatuses[0].containerID);
    const frozenAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    try {
      await waitUntil(`${MC}-0 killed for its failed liveness probe, restarted and Ready`, async () => {
        const p = (await nodePods()).find((x) => x.metadata.name === `${MC}-0`);
        return (p?.status?.containerStatuses?.[0]?.restartCount ?? 0) > restartsBefore && condition(p!, 'Ready')?.status === 'True';
      }, { timeoutMs: 240_000, intervalMs: 1000 });
    } finally {
      try { process.kill(pid, 'SIGCONT'); } catch { /* killed, as it should be */ }
    }
    const events = await getJson<{ items: Array<{ reason: string; message: string }> }>(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${MC}-0`]);
    assert.ok(events.items.some((e) => e.reason === 'Killing' && /liveness/i.test(e.message)), 'the kubelet killed it for its liveness probe');
    const downMs = Date.now() - frozenAt;
    console.log(`      frozen node killed by its liveness probe and Ready again after ${(downMs / 1000).toFixed(1)} s`);
    // three failed probes (20-33 s) + the probe's 10 s grace + a restart; the pod's 60 s grace would give over 80 s
    assert.ok(downMs < 75_000, `killed on the probe's grace period, not the pod's (${downMs} ms)`);
    const after = (await nodePods()).find((x) => x.metadata.name === `${MC}-0`)!;
    assert.equal(after.metadata.uid, pod.metadata.uid, 'the same pod (restarted in place, not replaced)');
    const queuedAfter = await queuedOn(after.status.podIP);
    assert.equal(queuedAfter, queued, 'the restarted node found its queue in the spool');
    console.log(`      liveness restart kept ${queuedAfter} queued message(s)`);
  });
});


