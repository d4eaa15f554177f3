// The operator end to end, on the shared local Kubernetes (real API server, controller
// manager, a real kubelet running the node image's pods under containerd and runc,
// LoadBalancer on 127.51/16), with mail flowing through real mail nodes to a real capture
// server (on the host, exposed inside the node's namespace) found through real DNS (dnsmasq
// inside). The operator runs inside the node's namespace, as it would in the cluster.
// The tests build on each other (one MailCluster, scaled up and down), in order. Needs root.
// Own addresses: 127.44.0.10 on the host; 10.244.0.32-47 inside (peerAddress block 2).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kubeletSuitesWanted, peerAddress } from '../../support/local-cluster.ts';
import type { LocalCluster } from '../../../local/src/index.ts';
import type { KubeletNode } from '../../../local/src/node/node.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { swaks } from '../../support/swaks.ts';
import { freePort } from '../../support/addresses.ts';
import { makeTempDir, sleep } from '../../support/processes.ts';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { percentile } from '../../bench/stats.ts';
import {
  conditionOf, etrn, startTlsSubject, getMailCluster, inNode, mailClusterObject, nodeAdmin as adminOf, nodeMetric as metricOf, startOperator,
  suiteAddress, waitUntil, type Clients, type OperatorProcess,
  sharedClusterWithCrd,
  tearDownSuite,
} from './harness.ts';


const NS = `op-e2e-${randomBytes(3).toString('hex')}`;
const MC = 'relay';
const SMTP_PORT = 2525; // Addr[0]'s port (non-root friendly)
// The scale suite holds 50 clusters quiet for a minute; one cluster's 20 s here keeps the run short.
const QUIET_MS = Number(process.env.MAILCLUSTER_QUIET_MS ?? 20_000);
const SCALE_EVENTS = Number(process.env.MAILCLUSTER_SCALE_EVENTS ?? 6);

(kubeletSuitesWanted() ? describe : describe.skip)('operator end to end (local Kubernetes with a real kubelet, real mail nodes; root)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let node: KubeletNode;
  let exposed: { stop(): Promise<void> } | undefined;
  let c: Clients;
  let operator: OperatorProcess;
  let dns: DnsServer;
  let capture: CaptureServer;
  const captureAddress = suiteAddress(10);

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input === undefined ? {} : { input });
  const pods = async () => (await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${MC}` })).items
    .filter((p) => !p.metadata?.deletionTimestamp);
  const configMaps = async () => (await c.core.listNamespacedConfigMap({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${MC}` })).items;
  const mc = () => getMailCluster(c, NS, MC);
  const nodeAdmin = async (ip: string, path: string) => {
    const r = await adminOf(node.dial, ip, path);
    return { status: r.status, text: async () => r.body, json: async () => JSON.parse(r.body) as unknown };
  };
  const nodeMetric = (ip: string, name: string, labels?: Record<string, string>) => metricOf(node.dial, ip, name, labels);
  const operatorArgs = (args: string[]) => startOperator(cluster.kubeconfigPath, args, inNode(node));

  /** Every ConfigMap (`count` of them, or any number) names exactly these pod IPs as etrn-cluster peers and in SELFADDRESSES. */
  async function configsListExactly(ips: string[], count?: number): Promise<boolean> {
    const cms = await configMaps();
    if (count !== undefined ? cms.length !== count : cms.length === 0) return false;
    const want = [...ips].sort();
    return cms.every((cm) => {
      const smtp = cm.data?.['smtpserver.conf'] ?? '';
      const zm = cm.data?.['zmailer.conf'] ?? '';
      const peers = smtp.split('\n').filter((l) => l.startsWith('PARAM etrn-cluster ')).map((l) => l.split(' ')[2].replace(/\/1174$/, '')).sort();
      const self = (zm.split('\n').find((l) => l.startsWith('SELFADDRESSES=')) ?? '').slice(14).split(',');
      return JSON.stringify(peers) === JSON.stringify(want) && want.every((ip) => self.includes(ip));
    });
  }

  async function readyPodIps(n: number): Promise<string[]> {
    let ips: string[] = [];
    await waitUntil(`${n} ready serving pods`, async () => {
      const ps = await pods();
      const ready = ps.filter((p) => p.metadata?.labels?.['mailcluster.io/role'] === 'serving'
        && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') && p.status?.podIP);
      ips = ready.map((p) => p.status!.podIP!);
      return ps.length === n && ready.length === n;
    }, { timeoutMs: 60_000, intervalMs: 200 });
    return ips;
  }

  async function waitReady(replicas: number): Promise<any> {
    let last: any;
    await waitUntil(`MailCluster ${MC} Ready with ${replicas} replicas`, async () => {
      last = await mc();
      return conditionOf(last, 'Ready')?.status === 'True' && last.status?.readyReplicas === replicas
        && last.status?.observedGeneration === last.metadata.generation && conditionOf(last, 'Progressing')?.status === 'False';
    }, { timeoutMs: 90_000, intervalMs: 250 });
    return last;
  }

  async function sendMail(to: string, subject: string): Promise<number | undefined> {
    const addr = (await mc()).status.address as string;
    const r = await swaks({ server: `${addr}:${SMTP_PORT}`, from: 'sender@isp.example', to, headers: [`Subject: ${subject}`], body: subject, timeoutSeconds: 15 });
    return r.lastCode;
  }

  before(async function () {
    this.timeout(600_000);
    ({ cluster, c } = await sharedClusterWithCrd());
    node = cluster.kubeletNode!;
    await kubectl(['create', 'namespace', NS]);
    capture = await startCaptureServer({ address: captureAddress, port: await freePort(captureAddress) });
    const mx = await node.exposeHost(capture.address, capture.port, peerAddress(2, 10));
    exposed = mx;
    node.addPeerAddress(peerAddress(2, 2));
    dns = await startDns({
      address: peerAddress(2, 2),
      inside: inNode(node),
      mx: [{ domain: 'customer.example', host: 'mx.customer.example', preference: 10 }],
      a: [{ name: 'mx.customer.example', ip: mx.address }],
    });
    // the roll test's "new image": the same archive under a second tag, no registry
    await node.tagImage('mailcluster/node:0.1.0', 'mailcluster/node:0.1.1');
    operator = await operatorArgs(['--namespace', NS]);
  });

  after(async function () {
    this.timeout(120_000);
    await tearDownSuite(cluster, NS, operator, [dns, exposed, capture]);
  });

  it('a 3-node MailCluster becomes Ready, with every child, and mail sent to Addr[0] reaches its destination', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, MC, {
      replicas: 3,
      hostname: 'smtp.isp.example',
      relayDomains: ['customer.example'],
      service: { port: SMTP_PORT },
      delivery: { dnsServer: dns.server, port: capture.port, retryInterval: '1h' },
      drainTimeout: '60s',
    })));
    const ready = await waitReady(3);
    assert.match(ready.status.address, /^127\.51\./);
    assert.equal(ready.status.selector, `app.kubernetes.io/instance=${MC},app.kubernetes.io/name=mailcluster-node`);
    assert.equal(ready.status.peers.length, 3);

    const names = async (kind: string) => (await kubectl(['get', kind, '-n', NS, '-l', 'app.kubernetes.io/managed-by=mailcluster-operator', '-o', 'name'])).stdout.trim().split('\n').sort();
    assert.deepEqual(await names('pods'), ['pod/relay-0', 'pod/relay-1', 'pod/relay-2']);
    assert.deepEqual(await names('configmaps'), ['configmap/relay-0-config', 'configmap/relay-1-config', 'configmap/relay-2-config']);
    assert.deepEqual(await names('persistentvolumeclaims'), ['persistentvolumeclaim/relay-0-spool', 'persistentvolumeclaim/relay-1-spool', 'persistentvolumeclaim/relay-2-spool']);
    assert.deepEqual(await names('secrets'), ['secret/relay-admin', 'secret/relay-mailq', 'secret/relay-peer-tls']);
    assert.deepEqual(await names('networkpolicies'), ['networkpolicy.networking.k8s.io/relay']);
    assert.deepEqual(await names('services'), ['service/relay', 'service/relay-peers']);
    assert.deepEqual(await names('poddisruptionbudgets'), ['poddisruptionbudget.policy/relay']);
    const pod = (await pods())[0];
    assert.deepEqual(pod.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.controller]), [['MailCluster', MC, true]]);
    assert.ok(await configsListExactly(ready.status.peers.map((p: string) => p.replace(/\/1174$/, '')), 3));

    assert.equal(await sendMail('alice@customer.example', 'first'), 250);
    await capture.waitForMessages(1, 20_000);
    assert.ok(capture.messages.some((m) => m.rcptTo.includes('alice@customer.example') && m.raw.toString().includes("Subject: first")));
    const printed = (await kubectl(['get', 'mc', MC, '-n', NS])).stdout;
    assert.match(printed, /REPLICAS\s+READY\s+ADDRESS\s+AGE/);
  });

  it('kubectl scale mc --replicas=5: every ConfigMap lists the 5 pod IPs, the running nodes reload, an ETRN reaches all 5', async () => {
    const before = await readyPodIps(3);
    const reloadsBefore = new Map<string, number>();
    for (const ip of before) reloadsBefore.set(ip, await nodeMetric(ip, 'mailcluster_config_reloads_total', { result: 'ok' }));
    await kubectl(['scale', 'mc', MC, '-n', NS, '--replicas=5']);
    const ips = await readyPodIps(5);
    const readyAt = Date.now();
    await waitUntil('every ConfigMap listing the 5 pod IPs', () => configsListExactly(ips, 5), { timeoutMs: 10_000, intervalMs: 100 });
    const lag = Date.now() - readyAt;
    assert.ok(lag <= 2000, `ConfigMaps followed the pods within 2 s (took ${lag} ms)`);
    await waitUntil('the 3 old nodes reloaded', async () => {
      for (const ip of before) if (await nodeMetric(ip, 'mailcluster_config_reloads_total', { result: 'ok' }) <= reloadsBefore.get(ip)!) return false;
      return true;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    await waitReady(5);
    const reply = await etrn((await mc()).status.address, SMTP_PORT, 'customer.example');
    assert.match(reply.at(-1) ?? '', /^250 /, reply.join('\n'));
    const mentioned = ips.filter((ip) => reply.some((l) => l.includes(ip)));
    assert.ok(mentioned.length >= 4, `the ETRN reply names the other 4 nodes: ${reply.join(' | ')}`);
  });

  it('scale to 2 while the removed nodes hold mail: the 2 that stay list only each other at once, the 3 drain together, nothing is lost', async function () {
    this.timeout(180_000);
    await capture.stop(); // the destination is down: mail waits in the nodes' queues
    const subjects = Array.from({ length: 20 }, (_, i) => `held-${i}`);
    for (const s of subjects) assert.equal(await sendMail('bob@customer.example', s), 250);
    const ips = await readyPodIps(5);
    await waitUntil('all 20 messages queued', async () => {
      let total = 0;
      for (const ip of ips) total += ((await (await nodeAdmin(ip, '/queue')).json()) as { total: number }).total;
      return total >= 20;
    }, { timeoutMs: 20_000, intervalMs: 250 });
    const byPod = new Map<string, number>();
    for (const p of await pods()) byPod.set(p.metadata!.name!, ((await (await nodeAdmin(p.status!.podIP!, '/queue')).json()) as { total: number }).total);
    const heldByRemoved = (byPod.get(`${MC}-2`) ?? 0) + (byPod.get(`${MC}-3`) ?? 0) + (byPod.get(`${MC}-4`) ?? 0);
    assert.ok(heldByRemoved > 0, `the nodes to be removed hold mail: ${JSON.stringify([...byPod])}`);

    const stay = (await pods()).filter((p) => [`${MC}-0`, `${MC}-1`].includes(p.metadata!.name!)).map((p) => p.status!.podIP!);
    await kubectl(['scale', 'mc', MC, '-n', NS, '--replicas=2']);
    // the draining nodes leave every peer list at once (they still hand their mail over)
    await waitUntil('every ConfigMap lists only the 2 nodes that stay', () => configsListExactly(stay), { timeoutMs: 10_000, intervalMs: 100 });
    let maxDraining = 0;
    await waitUntil('2 pods left', async () => {
      const ps = await pods();
      maxDraining = Math.max(maxDraining, ps.filter((p) => p.metadata?.labels?.['mailcluster.io/role'] === 'draining').length);
      return ps.length === 2;
    }, { timeoutMs: 150_000, intervalMs: 200 });
    console.log(`      at most ${maxDraining} nodes draining at once`);
    const left = await readyPodIps(2);
    await waitUntil('ConfigMaps list the 2 remaining nodes', () => configsListExactly(left, 2), { timeoutMs: 10_000, intervalMs: 100 });
    const claims = (await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS })).items.filter((x) => !x.metadata?.deletionTimestamp).map((x) => x.metadata!.name).sort();
    assert.deepEqual(claims, [`${MC}-0-spool`, `${MC}-1-spool`]);

    capture.clear();
    await capture.start();
    const reply = await etrn((await mc()).status.address, SMTP_PORT, 'customer.example');
    assert.match(reply.at(-1) ?? '', /^25\d /, reply.join('\n'));
    await capture.waitForMessages(20, 60_000).catch(async (err) => { throw new Error(`${(err as Error).message}; ${await diagnose(MC)}`); });
    const got = new Set(capture.messages.map((m) => /Subject: (held-\d+)/.exec(m.raw.toString())?.[1]).filter(Boolean));
    assert.deepEqual([...got].sort(), [...subjects].sort(), 'every held message delivered');
    await waitReady(2);
  });

  it('a deleted pod comes back and every ConfigMap follows its address', async () => {
    const [ip0] = await readyPodIps(2);
    const victim = (await pods()).find((p) => p.status?.podIP === ip0)!;
    await c.core.deleteNamespacedPod({ name: victim.metadata!.name!, namespace: NS, gracePeriodSeconds: 1 });
    await waitUntil('the pod recreated with a new uid', async () => {
      const p = (await pods()).find((x) => x.metadata?.name === victim.metadata!.name);
      return Boolean(p && p.metadata?.uid !== victim.metadata?.uid);
    }, { timeoutMs: 30_000, intervalMs: 200 });
    const ips = await readyPodIps(2);
    await waitUntil('ConfigMaps list the new address', () => configsListExactly(ips, 2), { timeoutMs: 10_000, intervalMs: 100 });
    await waitReady(2);
  });

  it('a new image rolls the nodes one at a time, draining each, keeping every spool', async function () {
    this.timeout(240_000);
    await readyPodIps(2);
    const claimUids = async () => (await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS })).items.map((x) => `${x.metadata!.name}:${x.metadata!.uid}`).sort();
    const claimsBefore = await claimUids();
    await kubectl(['patch', 'mc', MC, '-n', NS, '--type', 'merge', '-p', '{"spec":{"image":"mailcluster/node:0.1.1"}}']);
    let minReady = Infinity;
    let maxOut = 0;
    await waitUntil('every pod on the new image and ready', async () => {
      const ps = await pods();
      const ready = ps.filter((p) => p.metadata?.labels?.['mailcluster.io/role'] === 'serving' && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
      minReady = Math.min(minReady, ready.length);
      maxOut = Math.max(maxOut, 2 - ready.length);
      return ps.length === 2 && ready.length === 2 && ps.every((p) => p.spec?.containers[0].image === 'mailcluster/node:0.1.1');
    }, { timeoutMs: 200_000, intervalMs: 100 }).catch(async (err) => {
      // What the cluster looked like when it got stuck.
      const ps = (await pods()).map((p) => ({ name: p.metadata?.name, role: p.metadata?.labels?.['mailcluster.io/role'], image: p.spec?.containers[0].image, phase: p.status?.phase, ip: p.status?.podIP, conditions: p.status?.conditions, containers: p.status?.containerStatuses?.map((x) => x.state) }));
      console.log(`      stuck roll: pods ${JSON.stringify(ps)}\n      status ${JSON.stringify((await mc()).status?.conditions)}\n      operator log tail: ${operator.logs().slice(-6000)}`);
      throw err;
    });
    assert.ok(maxOut <= 1, `never more than one node out of service (min ready ${minReady})`);
    assert.deepEqual(await claimUids(), claimsBefore, 'the spool claims are kept');
    const events = (await kubectl(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${MC}`, '-o', 'jsonpath={.items[*].reason}'])).stdout;
    assert.match(events, /Rolling/);
    assert.match(events, /Draining/);
    await waitReady(2);
  });

  it('rejects invalid specs with clear messages', async () => {
    const attempt = async (spec: Record<string, unknown>, name = 'bad'): Promise<string> => {
      try {
        await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, name, spec)));
      } catch (err) {
        return String((err as Error).message);
      }
      await kubectl(['delete', 'mc', name, '-n', NS]).catch(() => undefined);
      return 'accepted';
    };
    assert.match(await attempt({ hostname: 'smtp.example', replicas: 0 }), /spec\.replicas.*should be greater than or equal to 1/);
    assert.match(await attempt({ hostname: 'smtp.example', replicas: 101 }), /spec\.replicas.*should be less than or equal to 100/);
    assert.match(await attempt({ hostname: 'not a host name' }), /spec\.hostname.*should match/);
    assert.match(await attempt({ replicas: 1 }), /spec\.hostname: Required value/);
    assert.match(await attempt({ hostname: 'smtp.example', relayNetworks: ['10.0.0.0/33'] }), /must be a CIDR/);
    assert.match(await attempt({ hostname: 'smtp.example', service: { type: 'ClusterIP', loadBalancerIP: '10.0.0.1' } }), /need type LoadBalancer/);
    assert.match(await attempt({ hostname: 'smtp.example', drainTimeout: 'soon' }), /spec\.drainTimeout.*should match/);
    assert.match(await attempt({ hostname: 'smtp.example' }, 'Bad_Name'), /metadata\.name|a lowercase RFC 1123/);
    const explained = (await kubectl(['explain', 'mailcluster.spec.drainTimeout'])).stdout;
    assert.match(explained, /DrainStalled/, 'kubectl explain shows the field description');
    const scale = JSON.parse((await kubectl(['get', '--raw', `/apis/mailcluster.io/v1alpha1/namespaces/${NS}/mailclusters/${MC}/scale`])).stdout);
    assert.equal(scale.kind, 'Scale');
    assert.equal(scale.status.selector, `app.kubernetes.io/instance=${MC},app.kubernetes.io/name=mailcluster-node`, 'the scale subresource gives an HPA the selector');
    // storageClassName is immutable (a patch of the running cluster, which must be refused).
    const patched = await kubectl(['patch', 'mc', MC, '-n', NS, '--type', 'merge', '-p', '{"spec":{"storage":{"storageClassName":"other"}}}'])
      .then(() => 'accepted', (err: Error) => err.message);
    assert.match(patched, /storageClassName is immutable/);
  });

  it('a spec the schema admits but that cannot work (missing TLS Secret) is Degraded with the reason, and recovers when it appears', async function () {
    this.timeout(150_000);
    const name = 'secure';
    try { await tlsScenario(name); } finally {
      await kubectl(['delete', 'mc', name, '-n', NS, '--ignore-not-found', '--wait=true', '--timeout=60s']).catch(() => undefined);
    }
  });

  async function tlsScenario(name: string): Promise<void> {
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, name, {
      replicas: 1, hostname: 'secure.isp.example', relayDomains: ['customer.example'], service: { port: SMTP_PORT }, tls: { secretName: 'secure-tls' },
    })));
    let degraded: any;
    await waitUntil('Degraded TLSSecretMissing', async () => {
      degraded = conditionOf(await getMailCluster(c, NS, name), 'Degraded');
      return degraded?.status === 'True' && degraded.reason === 'TLSSecretMissing';
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.match(degraded.message, /secure-tls/);
    const none = (await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${name}` })).items;
    assert.equal(none.length, 0, 'no node is started without its certificate');

    const dir = makeTempDir('op-e2e-tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=secure.isp.example',
      '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' });
    await kubectl(['create', 'secret', 'tls', 'secure-tls', '-n', NS, '--cert', join(dir, 'tls.crt'), '--key', join(dir, 'tls.key')]);
    let ready: any;
    await waitUntil('the TLS cluster Ready', async () => {
      ready = await getMailCluster(c, NS, name);
      return conditionOf(ready, 'Ready')?.status === 'True' && conditionOf(ready, 'Degraded')?.status === 'False' && Boolean(ready.status?.address);
    }, { timeoutMs: 90_000, intervalMs: 250 });
    const subject = await startTlsSubject(ready.status.address, SMTP_PORT);
    assert.match(subject, /CN=secure\.isp\.example/, 'STARTTLS with the certificate from the Secret');
  }

  /**
   * Scale 2 <-> 3, SCALE_EVENTS times: from `kubectl scale` until every ConfigMap lists exactly
   * the live pods and every surviving node reloaded. Returns the samples (ms).
   */
  async function measureScaleEvents(what: string): Promise<number[]> {
    const samples: number[] = [];
    let replicas = 2;
    for (let i = 0; i < SCALE_EVENTS; i++) {
      const target = replicas === 2 ? 3 : 2;
      const survivors = (await readyPodIps(replicas)).slice(0, 2);
      const reloads = new Map<string, number>();
      for (const ip of survivors) reloads.set(ip, await nodeMetric(ip, 'mailcluster_config_reloads_total', { result: 'ok' }));
      const t0 = Date.now();
      await kubectl(['scale', 'mc', MC, '-n', NS, `--replicas=${target}`]);
      await waitUntil(`scale to ${target} reflected in every ConfigMap and reloaded`, async () => {
        const ps = (await pods()).filter((p) => p.status?.podIP);
        if (ps.length !== target) return false;
        if (!(await configsListExactly(ps.map((p) => p.status!.podIP!), target))) return false;
        for (const ip of survivors) if (await nodeMetric(ip, 'mailcluster_config_reloads_total', { result: 'ok' }) <= reloads.get(ip)!) return false;
        return true;
      }, { timeoutMs: 60_000, intervalMs: 50 });
      samples.push(Date.now() - t0);
      replicas = target;
      await waitReady(replicas);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p95 = percentile(sorted, 95);
    console.log(`      scale event -> ConfigMaps rewritten and nodes reloaded, ${what}: p50 ${p50} ms, p95 ${p95} ms over ${samples.length} events (${samples.join(', ')})`);
    if (replicas !== 2) { await kubectl(['scale', 'mc', MC, '-n', NS, '--replicas=2']); await waitReady(2); }
    return samples;
  }

  // The kubelet writes ConfigMap volumes on its sync period (10 s here, up to a minute and
  // more in clusters): the nodes take a new ConfigMap from their own API watch first.
  it(`measures scale event -> all ConfigMaps rewritten and nodes reloaded on the kubelet, through the nodes' API watch (${SCALE_EVENTS} events)`, async function () {
    this.timeout(60_000 + SCALE_EVENTS * 30_000);
    const ips = await readyPodIps(2);
    for (const ip of ips) assert.equal(await nodeMetric(ip, 'mailcluster_config_api_watch_up'), 1, `${ip} watches its ConfigMap through the API server`);
    const updates = await Promise.all(ips.map((ip) => nodeMetric(ip, 'mailcluster_config_api_updates_total')));
    const samples = await measureScaleEvents('the API watch and the kubelet\'s volume');
    assert.equal(samples.length, SCALE_EVENTS);
    for (const [k, ip] of ips.entries()) {
      const now = await nodeMetric(ip, 'mailcluster_config_api_updates_total').catch(() => undefined);
      if (now !== undefined) assert.ok(now > updates[k], `${ip} got ConfigMap updates through the API server`);
    }
  });

  it(`writes nothing while the cluster is quiet (${QUIET_MS / 1000} s)`, async function () {
    this.timeout(QUIET_MS + 60_000);
    await waitReady(2);
    await sleep(3000); // let the last status write and watch events settle
    const writes0 = await operator.metricSum('mailcluster_operator_writes_total');
    const reconciles0 = await operator.metric('mailcluster_operator_reconciles_total');
    await sleep(QUIET_MS);
    const writes = (await operator.metricSum('mailcluster_operator_writes_total')) - writes0;
    const reconciles = (await operator.metric('mailcluster_operator_reconciles_total')) - reconciles0;
    console.log(`      quiet ${QUIET_MS / 1000} s: ${writes} writes, ${reconciles} reconciles`);
    assert.equal(writes, 0);
  });

  it('recovers from an API server restart mid-run and converges without duplicate children', async function () {
    this.timeout(180_000);
    const restarts0 = await operator.metric('mailcluster_operator_watch_restarts_total');
    const restart = cluster.controlPlane.restartApiServer();
    await sleep(300);
    await restart;
    await kubectl(['scale', 'mc', MC, '-n', NS, '--replicas=3']);
    const ips = await readyPodIps(3);
    await waitUntil('ConfigMaps list the 3 nodes', () => configsListExactly(ips, 3), { timeoutMs: 20_000, intervalMs: 200 });
    await waitReady(3);
    const restarted = (await operator.metric('mailcluster_operator_watch_restarts_total')) - restarts0;
    console.log(`      watches restarted after the API server restart: ${restarted}`);
    assert.ok(restarted > 0, 'the watches noticed the restart and recovered');
    assert.equal((await pods()).length, 3, 'no duplicate pods');
    assert.equal((await configMaps()).length, 3, 'no duplicate ConfigMaps');
    const secrets = (await c.core.listNamespacedSecret({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${MC}` })).items;
    assert.equal(secrets.length, 3, 'mailq, admin, peer-tls: no duplicates');
  });

  it('with two operator processes only the leader writes; when it dies the other takes over', async function () {
    this.timeout(180_000);
    await operator.stop();
    const election = ['--namespace', NS, '--leader-elect', '--leader-election-namespace', NS,
      '--leader-election-lease-duration', '4s', '--leader-election-renew-deadline', '3s', '--leader-election-retry-period', '500ms'];
    const [a, b] = await Promise.all([operatorArgs(election), operatorArgs(election)]);
    try {
      await waitUntil('one leader', async () => (await a.metric('mailcluster_operator_leader')) + (await b.metric('mailcluster_operator_leader')) === 1, { timeoutMs: 20_000, intervalMs: 200 });
      const [leader, follower] = (await a.metric('mailcluster_operator_leader')) === 1 ? [a, b] : [b, a];
      await kubectl(['scale', 'mc', MC, '-n', NS, '--replicas=2']);
      await waitReady(2);
      assert.ok((await leader.metricSum('mailcluster_operator_writes_total')) > 0, 'the leader wrote');
      assert.equal(await follower.metricSum('mailcluster_operator_writes_total'), 0, 'the follower wrote nothing');
      await leader.stop('SIGKILL');
      await waitUntil('the follower takes over', async () => (await follower.metric('mailcluster_operator_leader')) === 1, { timeoutMs: 20_000, intervalMs: 200 });
      await kubectl(['scale', 'mc', MC, '-n', NS, '--replicas=3']);
      await waitReady(3);
      assert.ok((await follower.metricSum('mailcluster_operator_writes_total')) > 0, 'the new leader writes');
      // A leader stopped with SIGTERM releases the Lease at once.
      const lease = await c.coordination.readNamespacedLease({ name: 'mailcluster-operator', namespace: NS });
      assert.ok(lease.spec?.holderIdentity, 'the Lease names the leader');
      await follower.stop('SIGTERM');
      const released = await c.coordination.readNamespacedLease({ name: 'mailcluster-operator', namespace: NS });
      assert.equal(released.spec?.holderIdentity ?? '', '', 'released on SIGTERM');
    } finally {
      await a.stop('SIGKILL');
      await b.stop('SIGKILL');
    }
  });

  /** What a failing wait shows: pods, their queues, claims, the operator's last words. */
  async function diagnose(name: string): Promise<string> {
    const lines: string[] = [];
    for (const p of (await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${name}` })).items) {
      const ip = p.status?.podIP;
      const q = ip ? await nodeAdmin(ip, '/queue').then((r) => r.text(), (e: Error) => e.message) : 'no ip';
      lines.push(`pod ${p.metadata?.name} ${p.metadata?.labels?.['mailcluster.io/role']} ${p.status?.phase} ${ip}: ${q.slice(0, 300)}`);
      const logs = await kubectl(['logs', '-n', NS, p.metadata!.name!, '--tail', '25']).then((r) => r.stdout, (e: Error) => e.message);
      lines.push(`  its last log lines:\n${logs}`);
    }
    lines.push(`claims ${(await claimsOf(name)).map((x) => x.metadata?.name).join(' ')}`);
    lines.push(`mc ${await getMailCluster(c, NS, name).then((m) => JSON.stringify({ finalizers: m.metadata.finalizers, deletion: m.metadata.deletionTimestamp, conditions: m.status?.conditions?.map((x: any) => `${x.type}=${x.status}/${x.reason}: ${x.message}`) }), () => 'gone')}`);
    lines.push(`operator: ${operator.logs().split('\n').slice(-15).join('\n')}`);
    return lines.join('\n');
  }

  const claimsOf = async (name: string) => (await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS, labelSelector: `mailcluster.io/cluster=${name}` })).items
    .filter((x) => !x.metadata?.deletionTimestamp);
  const subjectsIn = (messages: CaptureServer['messages']): Set<string> =>
    new Set(messages.map((m) => /Subject: ([a-z]+-\d+)/.exec(m.raw.toString())?.[1]).filter((x): x is string => Boolean(x)));

  // Garbage collection is kube-controller-manager's; adoption is the operator's (a new one).
  it('deleting the MailCluster (Retain, the default) keeps its spool claims; created again with the same name, it adopts them and delivers their mail', async function () {
    this.timeout(240_000);
    operator = await operatorArgs(['--namespace', NS]);
    await waitReady(3);
    await capture.stop(); // mail waits in the queues
    capture.clear();
    const subjects = Array.from({ length: 12 }, (_, i) => `retained-${i}`);
    for (const s of subjects) assert.equal(await sendMail('carol@customer.example', s), 250);
    const ips = await readyPodIps(3);
    await waitUntil('all 12 messages queued', async () => {
      let total = 0;
      for (const ip of ips) total += ((await (await nodeAdmin(ip, '/queue')).json()) as { total: number }).total;
      return total >= 12;
    }, { timeoutMs: 20_000, intervalMs: 250 });
    for (const claim of await claimsOf(MC)) assert.equal(claim.metadata?.ownerReferences, undefined, `${claim.metadata?.name} has no owner`);

    await kubectl(['delete', 'mc', MC, '-n', NS, '--wait=true', '--timeout=90s']);
    await waitUntil('every owned child gone', async () => {
      const out = (await kubectl(['get', 'pods,configmaps,secrets,services,pdb', '-n', NS, '-l', `app.kubernetes.io/instance=${MC}`, '-o', 'name'])).stdout.trim();
      return out === '';
    }, { timeoutMs: 90_000, intervalMs: 500 });
    assert.deepEqual((await claimsOf(MC)).map((x) => x.metadata!.name).sort(), [`${MC}-0-spool`, `${MC}-1-spool`, `${MC}-2-spool`], 'the claims, and the mail on them, are retained');

    // Created again, smaller: claims 0 and 1 are mounted by serving pods, claim 2 comes back
    // as a draining pod that hands its mail to them and only then goes.
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, MC, {
      replicas: 2, hostname: 'smtp.isp.example', relayDomains: ['customer.example'], service: { port: SMTP_PORT },
      delivery: { dnsServer: dns.server, port: capture.port, retryInterval: '1h' }, drainTimeout: '60s',
    })));
    await waitUntil('claim 2 drained and deleted', async () => (await claimsOf(MC)).length === 2, { timeoutMs: 120_000, intervalMs: 500 });
    await waitReady(2);
    await capture.start();
    const reply = await etrn((await mc()).status.address, SMTP_PORT, 'customer.example');
    assert.match(reply.at(-1) ?? '', /^25\d /, reply.join('\n'));
    await waitUntil('every retained message delivered', async () => subjects.every((x) => subjectsIn(capture.messages).has(x)), { timeoutMs: 60_000, intervalMs: 250 })
      .catch(async (err) => { throw new Error(`${(err as Error).message}; delivered ${[...subjectsIn(capture.messages)].join(' ')}; ${await diagnose(MC)}`); });
  });

  it('with whenDeleted: Delete, deletion waits until every queue is empty, then removes the claims and the MailCluster', async function () {
    this.timeout(240_000);
    const name = 'gone';
    await capture.stop();
    capture.clear();
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, name, {
      replicas: 2, hostname: 'gone.isp.example', relayDomains: ['customer.example'], service: { port: SMTP_PORT },
      storage: { retentionPolicy: { whenDeleted: 'Delete' } },
      delivery: { dnsServer: dns.server, port: capture.port, retryInterval: '2s', maxRetryInterval: '2s' }, drainTimeout: '60s',
    })));
    let ready: any;
    await waitUntil('cluster gone Ready with its finalizer', async () => {
      ready = await getMailCluster(c, NS, name);
      return conditionOf(ready, 'Ready')?.status === 'True' && Boolean(ready.status?.address) && (ready.metadata.finalizers ?? []).includes('mailcluster.io/drain-spools');
    }, { timeoutMs: 90_000, intervalMs: 250 });
    const subjects = Array.from({ length: 8 }, (_, i) => `deleted-${i}`);
    for (const s of subjects) {
      const r = await swaks({ server: `${ready.status.address}:${SMTP_PORT}`, from: 'sender@isp.example', to: 'dave@customer.example', headers: [`Subject: ${s}`], body: s, timeoutSeconds: 15 });
      assert.equal(r.lastCode, 250);
    }
    await kubectl(['delete', 'mc', name, '-n', NS, '--wait=false']);
    // The destination is down: the last node cannot empty its queue, so it and its claim stay.
    await sleep(15_000);
    const held = await getMailCluster(c, NS, name);
    assert.ok(held.metadata.deletionTimestamp, 'deletion requested');
    assert.ok((held.metadata.finalizers ?? []).includes('mailcluster.io/drain-spools'), 'held by the finalizer');
    const left = await claimsOf(name);
    assert.ok(left.length >= 1, 'a claim whose queue is not empty is kept');
    await capture.start(); // the destination comes back: the node delivers, reports drained, goes
    await waitUntil('the MailCluster and every claim gone', async () => {
      const stillThere = await getMailCluster(c, NS, name).then(() => true, () => false);
      return !stillThere && (await claimsOf(name)).length === 0;
    }, { timeoutMs: 150_000, intervalMs: 500 })
      .catch(async (err) => { throw new Error(`${(err as Error).message}; delivered ${[...subjectsIn(capture.messages)].join(' ')}; ${await diagnose(name)}`); });
    const got = subjectsIn(capture.messages);
    assert.deepEqual(subjects.filter((x) => !got.has(x)), [], 'every acknowledged message was delivered before its claim went');
  });
});
