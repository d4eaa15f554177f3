// Client addresses survive the load balancer (README "Client addresses through the load
// balancer"), end to end on the shared local Kubernetes: a client on its own address sends
// through Addr[0] of three one-node MailClusters: behind a plain load balancer (the node sees
// the load balancer: the control case, proving the check can fail), with
// spec.service.proxyProtocol (local mode's load balancer sends PROXY v2), and with
// spec.service.externalTrafficPolicy: Local (local mode's load balancer connects from the
// client's address). What shows it: the Received header of the delivered message, and relay
// control: the client's address is a relay network, so it may relay to a foreign domain only
// when the node sees that address.
// Addresses: the operator suite's 127.44/16: DNS .230, capture .231, the client .232; pods and
// load balancers come from the shared cluster (127.40/16, 127.41/16).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sharedLocalCluster } from '../../support/local-cluster.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { swaks } from '../../support/swaks.ts';
import { freePort } from '../../support/addresses.ts';
import { conditionOf, getMailCluster, mailClusterObject, startOperator, tearDownSuite, suiteAddress, waitUntil, type Clients, type OperatorProcess, sharedClusterWithCrd } from './harness.ts';

type Cluster = Awaited<ReturnType<typeof sharedLocalCluster>>;

const NS = `addr-e2e-${randomBytes(3).toString('hex')}`;
const PORT = 2525;
const CLIENT = suiteAddress(232);

describe('client addresses through local mode\'s load balancer (PROXY v2, externalTrafficPolicy Local, and neither)', function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let c: Clients;
  let operator: OperatorProcess;
  let dns: DnsServer;
  let capture: CaptureServer;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input === undefined ? {} : { input });
  const service: Record<string, Record<string, unknown>> = {
    plain: { port: PORT },
    proxied: { port: PORT, proxyProtocol: true },
    local: { port: PORT, externalTrafficPolicy: 'Local' },
  };
  const addresses: Record<string, string> = {};

  before(async function () {
    this.timeout(600_000);
    ({ cluster, c } = await sharedClusterWithCrd());
    await kubectl(['create', 'namespace', NS]);
    const captureAddress = suiteAddress(231);
    capture = await startCaptureServer({ address: captureAddress, port: await freePort(captureAddress) });
    dns = await startDns({
      address: suiteAddress(230),
      mx: [{ domain: 'customer.example', host: 'mx.test', preference: 10 }, { domain: 'elsewhere.example', host: 'mx.test', preference: 10 }],
      a: [{ name: 'mx.test', ip: captureAddress }],
    });
    operator = await startOperator(cluster.kubeconfigPath, ['--namespace', NS]);
    for (const [name, svc] of Object.entries(service)) {
      await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, name, {
        replicas: 1, hostname: `${name}.isp.example`, relayDomains: ['customer.example'], relayNetworks: [`${CLIENT}/32`],
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
    await tearDownSuite(cluster, NS, operator, [dns, capture]);
  });

  async function send(name: string, to: string): Promise<number | undefined> {
    const r = await swaks({ server: `${addresses[name]}:${PORT}`, localAddress: CLIENT, from: 'sender@isp.example', to, headers: [`Subject: via ${name}`], body: name, timeoutSeconds: 15 });
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
    assert.ok(received.includes(`[${addresses.plain}]`), `the load balancer's own address: ${received}`);
    assert.equal(await send('plain', 'someone@elsewhere.example'), 550, 'the relay network is the client\'s, not the load balancer\'s');
  });

  it('spec.service.proxyProtocol: the Service carries the annotation, the node reads the PROXY v2 header: Received names the client and it may relay', async () => {
    const svc = await c.core.readNamespacedService({ name: 'proxied', namespace: NS });
    assert.equal(svc.metadata?.annotations?.['mailcluster.io/proxy-protocol'], 'v2');
    const cm = await c.core.readNamespacedConfigMap({ name: 'proxied-0-config', namespace: NS });
    assert.match(cm.data?.['smtpserver.conf'] ?? '', new RegExp(`^PARAM proxy-protocol ${addresses.proxied.replace(/\./g, '\\.')}/32$`, 'm'));
    assert.equal(await send('proxied', 'someone@customer.example'), 250);
    assert.match(await receivedFrom('proxied'), new RegExp(`\\[${CLIENT.replace(/\./g, '\\.')}\\]`));
    assert.equal(await send('proxied', 'else@elsewhere.example'), 250);
  });

  it('spec.service.externalTrafficPolicy: Local: the Service carries it, the client\'s address reaches the node: Received names the client and it may relay', async () => {
    const svc = await c.core.readNamespacedService({ name: 'local', namespace: NS });
    assert.equal(svc.spec?.externalTrafficPolicy, 'Local');
    assert.equal(await send('local', 'someone@customer.example'), 250);
    assert.match(await receivedFrom('local'), new RegExp(`\\[${CLIENT.replace(/\./g, '\\.')}\\]`));
    assert.equal(await send('local', 'else@elsewhere.example'), 250);
  });
});
