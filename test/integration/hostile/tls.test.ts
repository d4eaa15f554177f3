// Peer TLS (BRIEF contract 4) and the outbound TLS policy, over real sockets:
// SNI picks the peer certificate; a drain hands off only over STARTTLS verified against the
// peer CA (a peer with another CA gets nothing, the mail stays); delivery per destination at
// `may`, `encrypt`, `verify`. Addresses: 127.10.211.0/24.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { nodeTestAddress, commonPort } from '../node/helpers.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { makeTempDir, removeTempDir, sleep, waitUntil } from '../../support/processes.ts';
import { makeCa, makeLeaf, makeSelfSigned } from '../../support/pki.ts';
import { swaks } from '../../support/swaks.ts';
import { connectRaw } from './client.ts';

const A = (h: number) => nodeTestAddress(211, h);
const PEER_NAME = 'mc-peers.mail.svc';

describe('peer TLS and the outbound TLS policy (issue 10, contract 4)', function () {
  this.timeout(120000);
  let dir: string;
  let dns: DnsServer;
  const nodes: MailNode[] = [];
  const captures: CaptureServer[] = [];
  let port: number;
  let smtpPort: number; // every node of a cluster listens on the same SMTP port (the hand-off target)
  let pki: { ca: ReturnType<typeof makeCa>; peer: ReturnType<typeof makeLeaf>; otherCa: ReturnType<typeof makeCa>; otherPeer: ReturnType<typeof makeLeaf>; pub: ReturnType<typeof makeSelfSigned> };

  before(async () => {
    dir = makeTempDir('tls');
    const ca = makeCa(dir, 'cluster-ca');
    const otherCa = makeCa(dir, 'other-ca');
    pki = {
      ca, otherCa,
      peer: makeLeaf(dir, 'peer', [PEER_NAME], ca),
      otherPeer: makeLeaf(dir, 'other-peer', [PEER_NAME], otherCa),
      pub: makeSelfSigned(dir, 'public', ['smtp.cluster.test']),
    };
    port = await commonPort([A(21), A(22), A(23), A(24)]);
    smtpPort = await commonPort([A(1), A(2), A(3), A(4), A(5)]);
    dns = await startDns({
      address: A(53),
      mx: [
        { domain: 'verified.test', host: 'mx.verified.test', preference: 10 },
        { domain: 'selfsigned.test', host: 'mx.selfsigned.test', preference: 10 },
        { domain: 'plain.test', host: 'mx.plain.test', preference: 10 },
        { domain: 'wrongname.test', host: 'mx.wrongname.test', preference: 10 },
        { domain: 'held.test', host: 'mx.held.test', preference: 10 },
      ],
      a: [
        { name: 'mx.verified.test', ip: A(21) }, { name: 'mx.selfsigned.test', ip: A(22) },
        { name: 'mx.plain.test', ip: A(23) }, { name: 'mx.wrongname.test', ip: A(24) },
        { name: 'mx.held.test', ip: A(25) }, // nobody listens: mail for it stays queued
      ],
    });
    const verifiedCert = makeLeaf(dir, 'mx-verified', ['mx.verified.test'], ca);
    const wrongName = makeLeaf(dir, 'mx-wrongname', ['somewhere.else.test'], ca);
    const selfSigned = makeSelfSigned(dir, 'mx-selfsigned', ['mx.selfsigned.test']);
    const pem = (f: { cert: string; key: string }) => ({ cert: readFileSync(f.cert), key: readFileSync(f.key) });
    captures.push(await startCaptureServer({ address: A(21), port, tls: pem(verifiedCert) }));
    captures.push(await startCaptureServer({ address: A(22), port, tls: pem(selfSigned) }));
    captures.push(await startCaptureServer({ address: A(23), port, tls: false }));
    captures.push(await startCaptureServer({ address: A(24), port, tls: pem(wrongName) }));
  });

  after(async () => {
    for (const n of nodes) await n.close();
    for (const c of captures) await c.stop();
    await dns?.stop();
    if (dir) removeTempDir(dir);
  });

  async function startNode(h: number, extra: Parameters<typeof startMailNode>[0] extends infer C ? Partial<C> : never = {}): Promise<MailNode> {
    const n = await startMailNode({
      hostname: `node${h}.cluster.test`, address: A(h), relayDomains: ['held.test', 'verified.test', 'selfsigned.test', 'plain.test', 'wrongname.test'],
      relayNetworks: [`${A(60)}/32`], dnsServer: dns.server, deliveryPort: port, retryInterval: 0.3, maxRetryInterval: 0.5,
      tlsCertFile: pki.pub.cert, tlsKeyFile: pki.pub.key, smtpPort, ...extra,
    }, { env: { MAILCLUSTER_DRAIN_FLUSH_WAIT_MS: '500', MAILCLUSTER_DRAIN_RETRY_MS: '300', MAILCLUSTER_DRAIN_PEER_REST_MS: '300' } });
    nodes.push(n);
    return n;
  }

  it('SNI: peer-tls-name gets the peer certificate, any other name the public one', async () => {
    const n = await startNode(1, { peerTls: { caFile: pki.ca.cert, certFile: pki.peer.cert, keyFile: pki.peer.key, name: PEER_NAME } });
    const [h, p] = n.smtp.split(':');
    const cn = async (servername?: string) => {
      const c = await connectRaw(h, Number(p), A(61));
      await c.command('EHLO x.test');
      assert.equal((await c.command('STARTTLS')).code, 220);
      const cert = await c.upgrade(servername ? { servername } : {});
      c.close();
      return cert.subject.CN;
    };
    assert.equal(await cn(PEER_NAME), PEER_NAME);
    assert.equal(await cn('smtp.cluster.test'), 'smtp.cluster.test');
    assert.equal(await cn(), 'smtp.cluster.test');
  });

  it('drain hand-off: verified STARTTLS to a peer with the cluster CA; a peer with another CA gets nothing', async () => {
    const peerTls = { caFile: pki.ca.cert, certFile: pki.peer.cert, keyFile: pki.peer.key, name: PEER_NAME };
    const good = await startNode(2, { peerTls });
    const impostor = await startNode(3, { peerTls: { caFile: pki.otherCa.cert, certFile: pki.otherPeer.cert, keyFile: pki.otherPeer.key, name: PEER_NAME } });
    // the draining node's only peer is the impostor first: nothing may reach it
    const etrn = (peer: MailNode) => ({ node: peer.config.address, port: peer.config.mailqPort, user: 'etrn', password: 'pw' });
    const draining = await startNode(4, { peerTls, etrnCluster: [etrn(impostor)], relayNetworks: [`${A(60)}/32`, `${A(0)}/24`] });
    for (const peer of [good, impostor]) await peer.reload({ relayNetworks: [`${A(60)}/32`, `${A(0)}/24`] });
    await sleep(500);
    const sent = await swaks({ server: draining.smtp, from: 's@client.test', to: 'u@held.test', localAddress: A(60) });
    assert.equal(sent.lastCode, 250, sent.transcript);
    assert.equal((await draining.admin('/drain', { method: 'POST' })).status, 202);
    await waitUntil('a failed hand-off to the impostor', async () => JSON.parse((await draining.admin('/drain')).body).handoffFailures > 0, { timeoutMs: 20000, intervalMs: 200 });
    assert.equal((await impostor.queue()).total, 0, 'the impostor (other CA) got nothing');
    assert.equal((await draining.queue()).total, 1, 'the message stays on the draining node');
    assert.match(String(JSON.parse((await draining.admin('/drain')).body).lastError), /certificate|self.signed|unable to verify/i);
    // now the right peer: the hand-off goes through, verified
    await draining.reload({ etrnCluster: [etrn(good)] });
    await waitUntil('the hand-off to the good peer', async () => (await good.queue()).total === 1, { timeoutMs: 20000, intervalMs: 200 });
    await waitUntil('the draining node is empty', async () => (await draining.queue()).total === 0, { timeoutMs: 10000, intervalMs: 200 });
    const line = good.logs().find((l) => l.msg === 'transaction' && l.result === 'accepted');
    assert.equal(line?.tls, true, 'the hand-off came over TLS');
  });

  it('outbound policy: may delivers to a self-signed MX; verify only to a verified name; encrypt needs STARTTLS', async () => {
    const n = await startNode(5, {
      smtpTlsSecurityLevel: 'may',
      smtpTlsCaFile: pki.ca.cert,
      smtpTlsPolicy: { 'verified.test': 'verify', 'wrongname.test': 'verify', 'plain.test': 'encrypt', '.selfsigned.test': 'verify' },
    });
    const send = async (to: string) => {
      const r = await swaks({ server: n.smtp, from: 's@client.test', to, localAddress: A(60) });
      assert.equal(r.lastCode, 250, r.transcript);
    };
    await send('a@verified.test');      // verify, CA-signed, right name: delivered over TLS
    await send('b@selfsigned.test');    // the `.selfsigned.test` entry covers subdomains only: `may` applies
    await send('c@wrongname.test');     // verify, name mismatch: held
    await send('d@plain.test');         // encrypt, no STARTTLS: held
    await captures[0].waitForMessages(1, 15000);
    await captures[1].waitForMessages(1, 15000);
    assert.equal(captures[0].messages[0].secure, true);
    assert.equal(captures[1].messages[0].secure, true, 'may: STARTTLS even with an unverifiable certificate');
    await sleep(2000); // several retries
    assert.equal(captures[2].messages.length, 0, 'encrypt never sends in plaintext');
    assert.equal(captures[3].messages.length, 0, 'verify never sends to a certificate for another name');
    const q = await n.queue();
    assert.equal(q.total, 2, `both held messages stay queued (deferred, not bounced): ${JSON.stringify(n.logs().filter((l) => l.event === 'delivery' && l.domain === 'plain.test').slice(0, 4))}`);
    // a reload that relaxes the policy lets them go
    await n.reload({ smtpTlsPolicy: { 'verified.test': 'verify' } });
    await captures[2].waitForMessages(1, 15000);
    await captures[3].waitForMessages(1, 15000);
    assert.equal(captures[2].messages[0].secure, false);
  });
});
