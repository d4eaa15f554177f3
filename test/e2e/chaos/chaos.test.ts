// Chaos: mail flows into Addr[0] of a real MailCluster on the shared local Kubernetes while
// bounded rounds of real faults hit it (kill -9 of a node process, a force-deleted pod, scaling
// 5→2→4, a pod-template change, kill -9 of the operator leader, a kube-apiserver restart, the
// MailCluster deleted and created again). Every 250 goes into a ledger. The customer's MX is
// down the whole time, so every message waits on some node's spool; then the MX comes up, one
// ETRN goes to Addr[0], and every acknowledged message must arrive at least once.
// Replay a run with MAILCLUSTER_CHAOS_SEED; bound it with MAILCLUSTER_CHAOS_ROUNDS and _SECONDS.
// The pods run on the real kubelet (root): kill -9 goes to the container's process (its host
// pid from containerd), and the kubelet restarts it. The operators run inside the node's
// namespace. This suite's own servers: the customer's MX on 127.49.0.10 (exposed inside at
// 10.244.0.58), DNS inside at 10.244.0.50 (peerAddress block 3).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { LocalCluster } from '../../../local/src/index.ts';
import type { KubeletNode } from '../../../local/src/node/node.ts';
import { kubeletSuitesWanted, peerAddress, sharedLocalCluster } from '../../support/local-cluster.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { addressIn, freePort } from '../../support/addresses.ts';
import { sleep } from '../../support/processes.ts';
import { clients, conditionOf, crdYaml, etrn, getMailCluster, inNode, mailClusterObject, startOperator, waitUntil, type Clients, type OperatorProcess } from '../operator/harness.ts';
import { Ledger, ledgerIdOf, seededRandom, sendOne } from './ledger.ts';

const CHAOS_RANGE = '127.49.0.0/16';
const NS = `chaos-${randomBytes(3).toString('hex')}`;
const MC = 'chaos';
const SMTP_PORT = 2525;
const SEED = Number(process.env.MAILCLUSTER_CHAOS_SEED ?? Date.now() % 1_000_000);
// 9: every kind of fault once plus the two other scale steps (the seeded order below)
const ROUNDS = Number(process.env.MAILCLUSTER_CHAOS_ROUNDS ?? 9);
const SECONDS = Number(process.env.MAILCLUSTER_CHAOS_SECONDS ?? 300);
const SENDERS = 2;
const SEND_PAUSE_MS = 300;

const FAULTS = ['kill9-node', 'force-delete-pod', 'scale', 'template-change', 'kill-operator-leader', 'restart-apiserver', 'delete-recreate'] as const;
type Fault = typeof FAULTS[number];

(kubeletSuitesWanted() ? describe : describe.skip)('chaos: every acknowledged message survives real faults (ledger, local Kubernetes with a real kubelet; root)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let node: KubeletNode;
  let exposed: { stop(): Promise<void> } | undefined;
  let c: Clients;
  let dns: DnsServer;
  let mx: CaptureServer;
  const operators: OperatorProcess[] = [];
  const random = seededRandom(SEED);
  const ledger = new Ledger();
  const faultLog: string[] = [];
  let replicas = 3;
  let templateFlip = false;
  const scaleSteps = [5, 2, 4];
  let scaleStep = 0;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input === undefined ? {} : { input });
  const mc = () => getMailCluster(c, NS, MC);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const election = () => ['--namespace', NS, '--leader-elect', '--leader-election-namespace', NS,
    '--leader-election-lease-duration', '4s', '--leader-election-renew-deadline', '3s', '--leader-election-retry-period', '500ms'];

  const spec = () => ({
    replicas,
    hostname: 'smtp.chaos.example',
    relayDomains: ['customer.example'],
    service: { port: SMTP_PORT },
    // The customer's MX is down: everything waits deferred until the ETRN at the end.
    delivery: { dnsServer: dns.server, port: mx.port, retryInterval: '1h', maxRetryInterval: '2h', queueLifetime: '168h' },
    drainTimeout: '10m',
    ...(templateFlip ? { resources: { requests: { cpu: '11m' } } } : { resources: { requests: { cpu: '10m' } } }),
  });
  const applyCluster = () => kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager', 'chaos-test', '-f', '-'], JSON.stringify(mailClusterObject(NS, MC, spec())));

  async function livePods() {
    return (await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${MC}` })).items
      .filter((p) => !p.metadata?.deletionTimestamp && p.status?.podIP);
  }

  async function leader(): Promise<OperatorProcess | undefined> {
    for (const o of operators) {
      if (o.child.exitCode === null && o.child.signalCode === null && (await o.metric('mailcluster_operator_leader').catch(() => 0)) === 1) return o;
    }
    return undefined;
  }

  async function waitConverged(timeoutMs: number): Promise<void> {
    await waitUntil(`MailCluster ${MC} Ready with ${replicas} replicas and only their claims`, async () => {
      const m = await mc().catch(() => undefined);
      if (!m || conditionOf(m, 'Ready')?.status !== 'True' || m.status?.readyReplicas !== replicas) return false;
      if (m.status?.observedGeneration !== m.metadata.generation || conditionOf(m, 'Progressing')?.status !== 'False') return false;
      const claims = (await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS })).items.filter((p) => !p.metadata?.deletionTimestamp);
      return claims.length === replicas;
    }, { timeoutMs, intervalMs: 1000 });
  }

  async function inject(fault: Fault): Promise<string> {
    switch (fault) {
      case 'kill9-node': {
        const pods = await livePods();
        if (pods.length === 0) return 'no pod with an address';
        const pod = pick(pods);
        const id = pod.status?.containerStatuses?.[0]?.containerID;
        if (!id) return `${pod.metadata!.name}: no container yet`;
        const pid = await node.containerPid(id).catch(() => undefined);
        if (!pid) return `${pod.metadata!.name}: no running container`;
        process.kill(pid, 'SIGKILL');
        return `${pod.metadata!.name} pid ${pid}`;
      }
      case 'force-delete-pod': {
        const pods = await livePods();
        if (pods.length === 0) return 'no pod';
        const pod = pick(pods);
        await kubectl(['delete', 'pod', pod.metadata!.name!, '-n', NS, '--force', '--grace-period=0', '--wait=false']);
        return pod.metadata!.name!;
      }
      case 'scale': {
        replicas = scaleSteps[scaleStep++ % scaleSteps.length];
        await kubectl(['scale', 'mc', MC, '-n', NS, `--replicas=${replicas}`]);
        return `to ${replicas}`;
      }
      case 'template-change': {
        templateFlip = !templateFlip;
        await applyCluster();
        return `cpu request ${templateFlip ? '11m' : '10m'}`;
      }
      case 'kill-operator-leader': {
        const l = await leader();
        if (!l) return 'no leader right now';
        await l.stop('SIGKILL');
        operators.splice(operators.indexOf(l), 1);
        operators.push(await startOperator(cluster.kubeconfigPath, election(), inNode(node)));
        return `pid ${l.child.pid}; a new replica started`;
      }
      case 'restart-apiserver': {
        await cluster.controlPlane.restartApiServer();
        return 'restarted';
      }
      case 'delete-recreate': {
        // Default retention (Retain): the claims outlive the MailCluster and the new one adopts them.
        await kubectl(['delete', 'mc', MC, '-n', NS, '--wait=true', '--timeout=180s'], undefined);
        await waitUntil('the old pods gone', async () => (await c.core.listNamespacedPod({ namespace: NS })).items.length === 0, { timeoutMs: 120_000, intervalMs: 500 });
        await applyCluster();
        return `deleted and created again with ${replicas} replicas`;
      }
    }
  }

  before(async function () {
    this.timeout(600_000);
    console.log(`      chaos seed ${SEED} (MAILCLUSTER_CHAOS_SEED replays it), ${ROUNDS} rounds, at most ${SECONDS} s`);
    cluster = await sharedLocalCluster();
    node = cluster.kubeletNode!;
    c = clients(cluster.kubeConfig);
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], crdYaml());
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailclusters.mailcluster.io']);
    await kubectl(['create', 'namespace', NS]);
    const mxAddress = addressIn(CHAOS_RANGE, 10);
    mx = await startCaptureServer({ address: mxAddress, port: await freePort(mxAddress) });
    await mx.stop(); // the customer is offline until the end
    const mxInside = await node.exposeHost(mxAddress, mx.port, peerAddress(3, 10));
    exposed = mxInside;
    node.addPeerAddress(peerAddress(3, 2));
    dns = await startDns({
      address: peerAddress(3, 2),
      inside: inNode(node),
      mx: [{ domain: 'customer.example', host: 'mx.customer.example', preference: 10 }],
      a: [{ name: 'mx.customer.example', ip: mxInside.address }],
    });
    operators.push(await startOperator(cluster.kubeconfigPath, election(), inNode(node)), await startOperator(cluster.kubeconfigPath, election(), inNode(node)));
  });

  after(async function () {
    this.timeout(120_000);
    await Promise.all(operators.map((o) => o.stop('SIGKILL').catch(() => undefined)));
    if (cluster) {
      await kubectl(['delete', 'mc', '--all', '-n', NS, '--wait=false']).catch(() => undefined);
      await kubectl(['delete', 'namespace', NS, '--wait=false']).catch(() => undefined);
    }
    await dns?.stop();
    await exposed?.stop();
    await mx?.stop();
  });

  it('delivers every acknowledged message at least once after kill -9, force deletes, scaling, rolls, leader and API-server failures and a re-created cluster', async function () {
    this.timeout((SECONDS + 900) * 1000);
    await applyCluster();
    await waitConverged(180_000);

    // Senders: one message per connection to Addr[0], as long as the faults go on.
    let sending = true;
    let address = (await mc()).status.address as string;
    const senders = Array.from({ length: SENDERS }, async (_, s) => {
      while (sending) {
        const id = ledger.newId(`s${s}`);
        const data = `From: <sender@isp.example>\nTo: <u${s}@customer.example>\nSubject: chaos ${id}\nX-Ledger: ${id}\n\nledger ${id}\n`;
        const result = await sendOne(address, SMTP_PORT, 'sender@isp.example', `u${s}@customer.example`, data);
        ledger.record(id, result);
        if (result.code === undefined) {
          // Addr[0] may have moved (the MailCluster was created again): look it up again.
          address = ((await mc().catch(() => undefined))?.status?.address as string | undefined) ?? address;
        }
        await sleep(SEND_PAUSE_MS);
      }
    });

    // Every kind of fault once and the scale steps 5, 2, 4 in turn (seeded order), then seeded
    // random picks, bounded by count and time.
    const order: Fault[] = [...FAULTS, 'scale' as const, 'scale' as const].sort(() => random() - 0.5);
    while (order.length < ROUNDS) order.push(pick([...FAULTS]));
    const deadline = Date.now() + SECONDS * 1000;
    try {
      for (const [round, fault] of order.slice(0, ROUNDS).entries()) {
        if (Date.now() > deadline) { faultLog.push(`round ${round}: time is up`); break; }
        const what = await inject(fault).catch((err: Error) => `failed to inject: ${err.message}`);
        faultLog.push(`round ${round}: ${fault} ${what} (acknowledged so far ${ledger.acknowledged.size})`);
        console.log(`      ${faultLog.at(-1)}`);
        await sleep(3000 + random() * 7000);
      }
    } finally {
      sending = false;
      await Promise.all(senders);
    }
    console.log(`      sending stopped: ${ledger.acknowledged.size} acknowledged, not acknowledged ${JSON.stringify(Object.fromEntries(ledger.notAcknowledged))}`);
    assert.ok(ledger.acknowledged.size > 50, 'enough mail was acknowledged for the run to mean something');

    // Faults stop: the cluster converges (surplus claims drained and gone, no operator help from the test).
    if (!(await leader())) operators.push(await startOperator(cluster.kubeconfigPath, election(), inNode(node)));
    await waitConverged(300_000).catch(async (err: Error) => {
      // CI keeps only the end of the output: the seed, the faults and where it stopped go with the failure
      const m = await mc().catch(() => undefined);
      const claims = await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS }).then((l) => l.items.map((p) => `${p.metadata?.name}${p.metadata?.deletionTimestamp ? ' (deleting)' : ''}`), () => ['?']);
      throw new Error(`${err.message}\nseed ${SEED} (MAILCLUSTER_CHAOS_SEED replays it); faults:\n${faultLog.join('\n')}\n` +
        `MailCluster: generation ${m?.metadata?.generation}, status ${JSON.stringify(m?.status ?? null)}\nclaims: ${claims.join(', ')}`);
    });

    // The customer comes back and says ETRN once (again only if a node was still starting).
    await mx.start();
    address = (await mc()).status.address as string;
    const reply = await etrn(address, SMTP_PORT, 'customer.example');
    console.log(`      ETRN: ${reply.at(-1)}`);
    const delivered = (): string[] => mx.messages.map((m) => ledgerIdOf(m.raw)).filter((x): x is string => x !== undefined);
    let etrns = 1;
    let lastEtrn = Date.now();
    await waitUntil('every acknowledged message delivered', async () => {
      const { missing } = ledger.reconcile(delivered());
      if (missing.length === 0) return true;
      // A node that was restarting when the ETRN came may have missed it: ask again now and then.
      if (Date.now() - lastEtrn > 20_000) {
        etrns++;
        lastEtrn = Date.now();
        await etrn(address, SMTP_PORT, 'customer.example').catch(() => undefined);
      }
      return false;
    }, { timeoutMs: 300_000, intervalMs: 1000 }).catch(() => undefined);

    const { missing, duplicates, unexpected } = ledger.reconcile(delivered());
    console.log(`      ledger: ${ledger.acknowledged.size} acknowledged, ${mx.messages.length} deliveries, ${missing.length} missing, ${duplicates} duplicates, ${unexpected} delivered without a 250 seen, ETRNs sent ${etrns}`);
    assert.deepEqual(missing.slice(0, 20), [], `acknowledged but never delivered (${missing.length}); seed ${SEED}; faults:\n${faultLog.join('\n')}`);
  });
});
