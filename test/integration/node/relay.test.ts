// Relay control, SIZE, loop stop, PROXY v1/v2 from trusted and untrusted addresses,
// delivery by MX preference, the SELFADDRESSES rule. Addresses: 127.10.1.0/24.
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startHaproxy, type Haproxy } from '../../support/haproxy.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { swaks } from '../../support/swaks.ts';
import { waitUntil, sleep } from '../../support/processes.ts';
import type { CaptureServer } from '../../support/capture-server.ts';
import { buildProxyV2 } from '../../../node-image/src/proxy/parse.ts';
import { commonPort, header, nodeTestAddress, rawSession, startCaptures } from './helpers.ts';

const A = (h: number) => nodeTestAddress(1, h);
const nodeIp = A(1);
const stranger = A(50);
const relayClient = A(60);
const peerIp = A(70);
const lbIp = A(80);
const mx1 = A(21);
const mx2 = A(22);
const customerMx = A(23);

describe('mail node: relay control, limits, PROXY, routing', function () {
  this.timeout(60000);
  let dns: DnsServer;
  let node: MailNode;
  let captures: CaptureServer[];
  let haproxy: Haproxy | undefined;
  let port: number;

  before(async () => {
    port = await commonPort([mx1, mx2, customerMx]);
    dns = await startDns({
      address: A(53),
      mx: [
        { domain: 'dest.test', host: 'mx1.dest.test', preference: 10 },
        { domain: 'dest.test', host: 'mx2.dest.test', preference: 20 },
        { domain: 'down.test', host: 'dead.down.test', preference: 10 },
        { domain: 'down.test', host: 'mx2.dest.test', preference: 20 },
        // a customer whose own server is the primary MX and the cluster the backup
        { domain: 'customer.test', host: 'mail.customer.test', preference: 10 },
        { domain: 'customer.test', host: 'smtp.cluster.test', preference: 20 },
        { domain: 'customer.test', host: 'mx2.dest.test', preference: 30 },
        // the cluster is the only MX, by address literal in SELFADDRESSES
        { domain: 'selfonly.test', host: 'lb.cluster.test', preference: 10 },
        { domain: 'back.test', host: 'mx2.dest.test', preference: 10 },
      ],
      a: [
        { name: 'mx1.dest.test', ip: mx1 },
        { name: 'mx2.dest.test', ip: mx2 },
        { name: 'dead.down.test', ip: A(24) },
        { name: 'mail.customer.test', ip: customerMx },
        { name: 'smtp.cluster.test', ip: A(90) },
        { name: 'lb.cluster.test', ip: A(91) },
      ],
    });
    captures = await startCaptures([mx1, mx2], port);
    node = await startMailNode({
      hostname: 'node1.cluster.test',
      address: nodeIp,
      maxsize: 20000,
      relayDomains: ['dest.test', 'down.test', 'customer.test', 'selfonly.test'],
      relayNetworks: [`${relayClient}/32`],
      proxyProtocol: [`${lbIp}/32`, '127.0.0.1/32'],
      etrnCluster: [{ node: peerIp, port: 1174, user: 'etrn', password: 'pw' }],
      dnsServer: dns.server,
      deliveryPort: port,
      selfAddresses: ['smtp.cluster.test', `[${A(91)}]`, nodeIp],
      retryInterval: 0.5,
      maxRetryInterval: 1,
      maxReceivedHeaders: 5,
      maxRecipients: 3,
    }, { env: { MAILCLUSTER_PROXY_TIMEOUT_MS: '1000' } });
  });

  after(async () => {
    await node?.close();
    await haproxy?.stop();
    for (const c of captures ?? []) await c.stop();
    await dns?.stop();
  });

  const send = (from: string, to: string | string[], localAddress = stranger, extra: Parameters<typeof swaks>[0] extends infer O ? Partial<O> : never = {}) =>
    swaks({ server: node.smtp, from, to, localAddress, quitAfter: 'rcpt', ...extra });

  it('accepts a relay domain from anyone, refuses others with 550 5.7.1', async () => {
    const ok = await send('s@client.test', 'u@dest.test');
    assert.equal(ok.lastCode, 250, ok.transcript);
    const denied = await send('s@client.test', 'u@elsewhere.test');
    assert.equal(denied.lastCode, 550, denied.transcript);
    assert.match(denied.lastReply!.text, /^5\.7\.1 Relaying denied/);
  });

  it('lets relay networks and etrn-cluster peers relay anywhere', async () => {
    assert.equal((await send('s@client.test', 'u@elsewhere.test', relayClient)).lastCode, 250);
    assert.equal((await send('s@client.test', 'u@elsewhere.test', peerIp)).lastCode, 250);
  });

  it('limits recipients per transaction (452 4.5.3)', async () => {
    const r = await send('s@client.test', ['a@dest.test', 'b@dest.test', 'c@dest.test', 'd@dest.test']);
    assert.equal(r.lastCode, 452, r.transcript);
  });

  it('announces SIZE and refuses a bigger message with 552 (MAIL SIZE= and after DATA)', async () => {
    const ehlo = await swaks({ server: node.smtp, to: 'u@dest.test', localAddress: stranger, quitAfter: 'helo' });
    assert.match(ehlo.transcript, /250[- ]SIZE 20000/);
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES']) assert.match(ehlo.transcript, new RegExp(`250[- ]${ext}`));
    const big = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@dest.test', localAddress: stranger, size: 40000 });
    assert.equal(big.lastCode, 552, big.transcript);
    const s = await rawSession(nodeIp, node.config.smtpPort, stranger);
    try {
      assert.match(await s.command('EHLO client.test'), /^250/);
      assert.match(await s.command('MAIL FROM:<s@client.test> SIZE=50000'), /^552 /);
    } finally { s.close(); }
  });

  it('stops a loop: too many Received headers gets 554', async () => {
    const headers = Array.from({ length: 5 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Sun, 29 Nov 2026 10:00:0${i} +0000`);
    const r = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@dest.test', localAddress: stranger, headers, body: 'loop' });
    assert.equal(r.lastCode, 554, r.transcript);
    assert.match(r.lastReply!.text, /5\.4\.6/);
  });

  it('delivers to the best MX, adds a Received header, and logs the transaction and the attempt', async () => {
    captures.forEach((c) => c.clear());
    const r = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@dest.test', localAddress: stranger, headers: ['X-Test: best-mx'], body: 'hello' });
    assert.equal(r.lastCode, 250, r.transcript);
    const [msg] = await captures[0].waitForMessages(1, 10000);
    assert.equal(header(msg.raw, 'X-Test'), 'best-mx');
    assert.match(header(msg.raw, 'Received') ?? '', new RegExp(`from .* \\(\\[${stranger.replace(/\./g, '\\.')}\\]\\) by node1\\.cluster\\.test \\(mailcluster\\) with ESMTP id \\w+`));
    assert.equal(msg.remoteAddress, nodeIp, 'outbound mail leaves from the node address');
    assert.equal(captures[1].messages.length, 0);
    await node.waitForLog((l) => l.event === 'smtp' && l.result === 'accepted');
    await node.waitForLog((l) => l.event === 'delivery' && l.result === 'delivered' && l.mx === 'mx1.dest.test');
  });

  it('tries the next MX when the best one does not answer', async () => {
    captures.forEach((c) => c.clear());
    const r = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@down.test', localAddress: stranger, headers: ['X-Test: next-mx'], body: 'x' });
    assert.equal(r.lastCode, 250);
    const [msg] = await captures[1].waitForMessages(1, 10000);
    assert.equal(header(msg.raw, 'X-Test'), 'next-mx');
  });

  it('SELFADDRESSES: drops the self MX and worse ones; waits deferred for the customer, then delivers when it is back', async () => {
    captures.forEach((c) => c.clear());
    const r = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@customer.test', localAddress: stranger, headers: ['X-Test: backup-mx'], body: 'x' });
    assert.equal(r.lastCode, 250);
    await waitUntil('a deferred customer.test message', async () => {
      const q = await node.queue();
      return q.total === 1 && (q.domains as Record<string, number>)['customer.test'] === 1 && (q.deferred as number) === 1;
    }, { timeoutMs: 10000 });
    await sleep(1500); // several retries
    assert.equal(captures[1].messages.length, 0, 'never sent to the worse MX behind our own');
    const [customer] = await startCaptures([customerMx], port);
    try {
      const [msg] = await customer.waitForMessages(1, 10000);
      assert.equal(header(msg.raw, 'X-Test'), 'backup-mx');
      await waitUntil('an empty queue', async () => (await node.queue()).total === 0, { timeoutMs: 5000 });
    } finally {
      await customer.stop();
    }
  });

  it('SELFADDRESSES: an only MX that is us (bracketed literal) stays deferred with that reason', async () => {
    const r = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@selfonly.test', localAddress: stranger, body: 'x' });
    assert.equal(r.lastCode, 250);
    const line = await node.waitForLog((l) => l.event === 'delivery' && l.domain === 'selfonly.test' && l.result === 'deferred');
    assert.match(String(line.reason), /points to this cluster/);
  });

  it('PROXY v1 and v2 from a trusted address give the real client to relay control', async () => {
    // v2 from the trusted load balancer address, source = a relay network client: may relay
    const v2 = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@elsewhere.test', localAddress: lbIp, quitAfter: 'rcpt',
      proxy: { version: 2, source: relayClient, dest: nodeIp } });
    assert.equal(v2.lastCode, 250, v2.transcript);
    // the same load balancer with a stranger behind it: denied (the LB's own address is never trusted)
    const v1 = await swaks({ server: node.smtp, from: 's@client.test', to: 'u@elsewhere.test', localAddress: lbIp, quitAfter: 'rcpt',
      proxy: { version: 1, source: stranger, dest: nodeIp } });
    assert.equal(v1.lastCode, 550, v1.transcript);
    await node.waitForLog((l) => l.event === 'smtp' && l.reason === 'relaying denied' && l.client === stranger);
  });

  it('refuses a trusted peer that sends no PROXY header, and a PROXY header from anyone else', async () => {
    const noHeader = await swaks({ server: node.smtp, to: 'u@dest.test', localAddress: lbIp, quitAfter: 'helo', timeoutSeconds: 5 });
    assert.ok(noHeader.replies.every((r) => r.code !== 250), noHeader.transcript);
    assert.equal(noHeader.replies[0]?.code, 421, noHeader.transcript);
    // an untrusted client sending a v2 header: refused, never taken as its address
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: nodeIp, port: node.config.smtpPort, localAddress: stranger });
      let text = '';
      s.on('connect', () => s.write(Buffer.concat([buildProxyV2({ address: relayClient, port: 1 }, { address: nodeIp, port: 25 }), Buffer.from('EHLO x\r\n')])));
      s.on('data', (d) => { text += d.toString('latin1'); });
      s.on('close', () => resolve(text));
      s.on('error', reject);
      setTimeout(() => { s.destroy(); resolve(text); }, 3000);
    });
    assert.match(reply, /^421 /m, reply);
    assert.doesNotMatch(reply, /^250/m);
  });

  it('takes the real client from haproxy send-proxy-v2', async () => {
    haproxy = await startHaproxy({ address: A(81), backends: [{ address: nodeIp, port: node.config.smtpPort }], proxyV2: true });
    const viaRelayClient = await swaks({ server: `${haproxy.address}:${haproxy.port}`, from: 's@client.test', to: 'u@elsewhere.test', localAddress: relayClient, quitAfter: 'rcpt' });
    assert.equal(viaRelayClient.lastCode, 250, viaRelayClient.transcript);
    const viaStranger = await swaks({ server: `${haproxy.address}:${haproxy.port}`, from: 's@client.test', to: 'u@elsewhere.test', localAddress: stranger, quitAfter: 'rcpt' });
    assert.equal(viaStranger.lastCode, 550, viaStranger.transcript);
  });
});
