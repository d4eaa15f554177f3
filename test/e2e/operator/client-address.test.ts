// Client addresses survive the load balancer (README "Client addresses through the load
// balancer"), end to end on the shared local Kubernetes with a real kubelet (root), for three
// one-node MailClusters:
// - behind local mode's plain load balancer (a TCP proxy: the node sees the address it
//   connects from, the node's gateway: the control case, proving the check can fail);
// - with spec.service.proxyProtocol (the load balancer sends PROXY v2; the nodes trust its
//   source through spec.service.proxyProtocolNetworks, as behind a cloud's NLB);
// - with spec.service.externalTrafficPolicy: Local, the way a cloud's pass-through load
//   balancer delivers it: the client's packets arrive at the node routed (from a namespace
//   outside the node, KubeletNode.outsideClient) at the Service's node port, and the real
//   kube-proxy keeps their source for a local endpoint; with Cluster it masquerades them.
// What shows it: the Received header of the delivered message, and relay control: the
// client's address is a relay network, so it may relay to a foreign domain only when the node
// sees that address.
// Addresses: the host client 127.44.0.232 and the capture server 127.44.0.231 (exposed inside
// at 10.244.0.74), DNS inside at 10.244.0.66 (peerAddress block 4), the outside client
// 10.245.0.2; load balancers from the shared cluster (127.51/16).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kubeletSuitesWanted, peerAddress } from '../../support/local-cluster.ts';
import type { LocalCluster } from '../../../local/src/index.ts';
import type { KubeletNode } from '../../../local/src/node/node.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { swaks } from '../../support/swaks.ts';
import { freePort } from '../../support/addresses.ts';
import { conditionOf, getMailCluster, inNode, mailClusterObject, startOperator, tearDownSuite, suiteAddress, waitUntil, type Clients, type OperatorProcess, sharedClusterWithCrd } from './harness.ts';

const NS = `addr-e2e-${randomBytes(3).toString('hex')}`;
const PORT = 2525;
const CLIENT = suiteAddress(232);

(kubeletSuitesWanted() ? describe : describe.skip)('client addresses through the load balancer (PROXY v2, externalTrafficPolicy Local through kube-proxy, and neither; real kubelet, root)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let node: KubeletNode;
  let exposed: { stop(): Promise<void> } | undefined;
  let outside: ReturnType<KubeletNode['outsideClient']>;
  let c: Clients;
  let operator: OperatorProcess;
  let dns: DnsServer;
  let capture: CaptureServer;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input === undefined ? {} : { input });
  // local mode's load balancer reaches the pods from the node's gateway address
  const GATEWAY = '10.244.0.1';
  const service: Record<string, Record<string, unknown>> = {
    plain: { port: PORT },
    proxied: { port: PORT, proxyProtocol: true, proxyProtocolNetworks: [`${GATEWAY}/32`] },
    local: { port: PORT, externalTrafficPolicy: 'Local' },
    cluster: { port: PORT, externalTrafficPolicy: 'Cluster' },
  };
  const addresses: Record<string, string> = {};

  before(async function () {
    this.timeout(600_000);
    ({ cluster, c } = await sharedClusterWithCrd());
    node = cluster.kubeletNode!;
    outside = node.outsideClient();
    await kubectl(['create', 'namespace', NS]);
    const captureAddress = suiteAddress(231);
    capture = await startCaptureServer({ address: captureAddress, port: await freePort(captureAddress) });
    const mx = await node.exposeHost(capture.address, capture.port, peerAddress(4, 10));
    exposed = mx;
    node.addPeerAddress(peerAddress(4, 2));
    dns = await startDns({
      address: peerAddress(4, 2),
      inside: inNode(node),
      mx: [{ domain: 'customer.example', host: 'mx.test', preference: 10 }, { domain: 'elsewhere.example', host: 'mx.test', preference: 10 }],
      a: [{ name: 'mx.test', ip: mx.address }],
    });
    operator = await startOperator(cluster.kubeconfigPath, ['--namespace', NS], inNode(node));
    for (const [name, svc] of Object.entries(service)) {
      await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, name, {
        replicas: 1, hostname: `${name}.isp.example`, relayDomains: ['customer.example'], relayNetworks: [`${CLIENT}/32`, `${outside.address}/32`],
        service: svc, delivery: { dnsServer: dns.server, port: capture.port, retryInterval: '1h' }, storage: { size: '16Mi' },
      })));
    }
    for (const name of Object.keys(service)) {
      await waitUntil(`${name} Ready with an address`, async () => {
        const mc = await getMailCluster(c, NS, name);
        if (conditionOf(mc, 'Ready')?.status !== 'True' || !mc.status?.address) return false;
        addresses[name] = mc.status.address;
        return true;
      }, { timeoutMs: 90_000, intervalMs: 250 });
    }
  });

  after(async function () {
    this.timeout(120_000);
    await tearDownSuite(cluster, NS, operator, [dns, exposed, capture]);
  });

  async function send(name: string, to: string): Promise<number | undefined> {
    const r = await swaks({ server: `${addresses[name]}:${PORT}`, localAddress: CLIENT, from: 'sender@isp.example', to, headers: [`Subject: via ${name}`], body: name, timeoutSeconds: 15 });
    return r.lastCode;
  }

  /** From the outside client to the Service's node port on the node, as a pass-through load balancer delivers it. */
  async function sendFromOutside(name: string, to: string): Promise<number | undefined> {
    const svc = await c.core.readNamespacedService({ name, namespace: NS });
    const nodePort = svc.spec?.ports?.find((p) => p.port === PORT)?.nodePort;
    assert.ok(nodePort, `${name} has a node port`);
    const r = await swaks({ server: `${node.network.nodeIP}:${nodePort}`, command: outside.command, from: 'sender@isp.example', to, headers: [`Subject: via ${name}`], body: name, timeoutSeconds: 15 });
    return r.lastCode;
  }

  async function receivedFrom(name: string): Promise<string> {
    let header = '';
    await waitUntil(`the message via ${name} delivered`, async () => {
      const m = capture.messages.find((x) => x.raw.toString().includes(`Subject: via ${name}`));
      if (!m) return false;
      header = /^Received: from [^\r\n]*/m.exec(m.raw.toString())?.[0] ?? '';
      return true;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    return header;
  }

  it('without PROXY or externalTrafficPolicy Local the node sees the load balancer, not the client: Received names another address, and relaying is refused', async () => {
    assert.equal(await send('plain', 'someone@customer.example'), 250);
    const received = await receivedFrom('plain');
    assert.ok(!received.includes(`[${CLIENT}]`), received);
    assert.ok(received.includes(`[${GATEWAY}]`), `the address the load balancer connects from: ${received}`);
    assert.equal(await send('plain', 'someone@elsewhere.example'), 550, 'the relay network is the client\'s, not the load balancer\'s');
  });

  it('spec.service.proxyProtocol: the Service carries the annotation, the node reads the PROXY v2 header: Received names the client and it may relay', async () => {
    const svc = await c.core.readNamespacedService({ name: 'proxied', namespace: NS });
    assert.equal(svc.metadata?.annotations?.['mailcluster.io/proxy-protocol'], 'v2');
    const cm = await c.core.readNamespacedConfigMap({ name: 'proxied-0-config', namespace: NS });
    assert.match(cm.data?.['smtpserver.conf'] ?? '', new RegExp(`^PARAM proxy-protocol ${GATEWAY.replace(/\./g, '\\.')}/32$`, 'm'));
    assert.equal(await send('proxied', 'someone@customer.example'), 250);
    assert.match(await receivedFrom('proxied'), new RegExp(`\\[${CLIENT.replace(/\./g, '\\.')}\\]`));
    assert.equal(await send('proxied', 'else@elsewhere.example'), 250);
  });

  it('externalTrafficPolicy: Cluster through kube-proxy: the routed client is masqueraded to the node\'s address, and relaying is refused', async () => {
    assert.equal(await sendFromOutside('cluster', 'someone@customer.example'), 250);
    const received = await receivedFrom('cluster');
    assert.ok(!received.includes(`[${outside.address}]`), received);
    assert.equal(await sendFromOutside('cluster', 'someone@elsewhere.example'), 550);
  });

  it('spec.service.externalTrafficPolicy: Local: the Service carries it, kube-proxy keeps the routed client\'s address: Received names the client and it may relay', async () => {
    const svc = await c.core.readNamespacedService({ name: 'local', namespace: NS });
    assert.equal(svc.spec?.externalTrafficPolicy, 'Local');
    assert.equal(await sendFromOutside('local', 'someone@customer.example'), 250);
    assert.match(await receivedFrom('local'), new RegExp(`\\[${outside.address.replace(/\./g, '\\.')}\\]`));
    assert.equal(await sendFromOutside('local', 'else@elsewhere.example'), 250);
  });
});
