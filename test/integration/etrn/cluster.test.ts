// The ETRN cluster end to end: three real mail nodes behind haproxy (Addr[0], PROXY v2),
// dnsmasq making the cluster the customer's backup MX, a capture server as the customer's
// own MX (down at first). Addresses 127.20.0.0/16 only.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { addressIn } from '../../support/addresses.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startHaproxy, type Haproxy } from '../../support/haproxy.ts';
import { startMailNode, type MailNode, type MailNodeConfig } from '../../support/mail-node.ts';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
import { mailqEtrn } from '../../../node-image/src/mailq/client.ts';
import { lineTalk, smtpTalk } from './wire.ts';

const A = (host: number) => addressIn('127.20.0.0/16', host);
const ADDR0 = A(1); // haproxy: Addr[0]
const DNS = A(2);
const CUSTOMER = A(50); // the customer's own server
const NODE_IPS = [A(11), A(12), A(13)];
const SMTP_PORT = 2525;
const MAILQ_PORT = 1174;
const ADMIN_PORT = 8025;
const DELIVERY_PORT = 2600;
const ADDR0_NAME = 'mx.cluster.example';
const DOMAIN = 'customer.example';
const PASSWORD = 's3cret-etrn';

interface Sent { ids: string[] }

/** Sends `count` messages to DOMAIN through host:port over a few pooled connections. */
async function sendMessages(host: string, port: number, count: number, tag: string): Promise<Sent> {
  const transport = nodemailer.createTransport({ pool: true, host, port, secure: false, ignoreTLS: true, maxConnections: 6, maxMessages: 5, name: 'client.example' });
  const ids: string[] = [];
  try {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const id = `<${tag}-${i}@client.example>`;
        await transport.sendMail({ from: 'sender@client.example', to: `user${i % 7}@${DOMAIN}`, subject: `${tag} ${i}`, text: `message ${i}`, messageId: id });
        ids.push(id);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
  } finally {
    transport.close();
  }
  return { ids };
}

function messageIdOf(raw: Buffer): string {
  const m = /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'));
  return m ? m[1] : '';
}

describe('ETRN cluster: three nodes behind haproxy (PROXY v2), customer MX down then up', function () {
  this.timeout(120_000);
  let dns: DnsServer;
  let haproxy: Haproxy;
  let customer: CaptureServer;
  const nodes: MailNode[] = [];
  const dirs: string[] = [];

  const totalQueued = async (which = nodes) => (await Promise.all(which.map((n) => n.queue()))).reduce((s, q) => s + q.total, 0);
  const received = (tag: string) => customer.messages.filter((m) => messageIdOf(m.raw).startsWith(`<${tag}-`));

  before(async () => {
    dns = await startDns({
      address: DNS,
      mx: [
        { domain: DOMAIN, host: `mail.${DOMAIN}`, preference: 10 },
        { domain: DOMAIN, host: ADDR0_NAME, preference: 20 },
      ],
      a: [{ name: `mail.${DOMAIN}`, ip: CUSTOMER }, { name: ADDR0_NAME, ip: ADDR0 }],
    });
    customer = await startCaptureServer({ address: CUSTOMER, port: DELIVERY_PORT, listen: false });
    for (let i = 0; i < NODE_IPS.length; i++) {
      const dir = makeTempDir(`etrn-node${i}`);
      dirs.push(dir);
      const config: MailNodeConfig = {
        hostname: `node${i}.cluster.example`,
        address: NODE_IPS[i],
        smtpPort: SMTP_PORT,
        mailqPort: MAILQ_PORT,
        adminPort: ADMIN_PORT,
        // every node lists every node, itself included; the password from a file
        etrnCluster: NODE_IPS.map((ip) => ({ node: ip, port: MAILQ_PORT, user: 'etrn', password: `@${join(dir, 'config', 'etrn-password')}` })),
        extraFiles: { 'etrn-password': `${PASSWORD}\n` },
        schedulerAuth: [{ user: 'etrn', password: PASSWORD, attrs: 'ETRN', acl: '[127.20.0.0]/16' }],
        relayDomains: [DOMAIN],
        // haproxy (127.20.0.1) and the nodes themselves (127.20.0.11-13): a hand-off between
        // nodes then starts with a PROXY header too, as it must where the proxy networks
        // cover the nodes' own addresses; test clients connect from outside this /28
        proxyProtocol: ['127.20.0.0/28'],
        dnsServer: dns.server,
        deliveryPort: DELIVERY_PORT,
        retryInterval: 3600,
        maxRetryInterval: 3600,
        selfAddresses: [ADDR0, ADDR0_NAME, ...NODE_IPS],
      };
      nodes.push(await startMailNode(config, {
        dir,
        env: {
          MAILCLUSTER_ETRN_PEER_TIMEOUT_MS: '2000',
          MAILCLUSTER_ETRN_RATE_BURST: '100',
          MAILCLUSTER_DRAIN_FLUSH_WAIT_MS: '5000',
          MAILCLUSTER_DRAIN_PEER_REST_MS: '1000',
          MAILCLUSTER_DRAIN_CONCURRENCY: '2',
          MAILCLUSTER_DELIVERY_CONNECT_TIMEOUT_MS: '2000',
        },
      }));
    }
    haproxy = await startHaproxy({
      address: ADDR0,
      port: SMTP_PORT,
      backends: NODE_IPS.map((address) => ({ address, port: SMTP_PORT })),
      proxyV2: true,
      sourceAddress: ADDR0,
    });
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    // what the nodes said, for the failure report
    for (const [i, n] of nodes.entries()) {
      const lines = n.logs().filter((l) => Number(l.level) >= 40 || l.event === 'delivery' || l.event === 'handoff').slice(-8);
      console.log(`      node${i} log tail:\n${lines.map((l) => '        ' + JSON.stringify(l)).join('\n')}`);
    }
  });

  after(async () => {
    await haproxy?.stop();
    await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
    await customer?.stop();
    await dns?.stop();
    for (const d of dirs) removeTempDir(d);
  });

  it('holds 300 messages for the offline customer on all three nodes, then one ETRN at Addr[0] delivers them all, once each', async () => {
    const sent = await sendMessages(ADDR0, SMTP_PORT, 300, 'wave1');
    assert.equal(sent.ids.length, 300);
    await waitUntil('300 messages queued', async () => (await totalQueued()) === 300, { timeoutMs: 20_000 });
    const perNode = await Promise.all(nodes.map((n) => n.queue()));
    for (const [i, q] of perNode.entries()) assert.ok(q.total > 0, `node${i} holds some of the mail (${q.total})`);
    assert.equal(customer.connections(), 0);

    await customer.start();
    const t0 = Date.now();
    const replies = await smtpTalk(ADDR0, SMTP_PORT, ['EHLO customer-site.example', `ETRN ${DOMAIN}`]);
    const ehlo = replies[1];
    assert.match(ehlo.text, /^250[- ]ETRN$/m, 'EHLO announces ETRN');
    const etrn = replies[2];
    const lines = etrn.text.split('\r\n');
    assert.equal(lines.length, 2 * NODE_IPS.length + 1, etrn.text);
    NODE_IPS.forEach((ip, i) => {
      assert.equal(lines[2 * i], `250-2.0.0 Attempting ETRN on cluster node: ${ip}/${MAILQ_PORT}`);
      assert.equal(lines[2 * i + 1], '250-2.0.0 +OK; an ETRN started something.');
    });
    assert.equal(lines.at(-1), '250 2.0.0 ETRN-cluster operation(s) complete');

    await customer.waitForMessages(300, 30_000);
    const elapsed = Date.now() - t0;
    const got = received('wave1');
    const ids = got.map((m) => messageIdOf(m.raw));
    assert.equal(new Set(ids).size, 300, 'every message arrived');
    assert.equal(ids.length, 300, 'none twice');
    assert.deepEqual(new Set(got.map((m) => m.remoteAddress)), new Set(NODE_IPS), 'delivered from all three nodes');
    assert.ok(elapsed < 20_000, `delivered within seconds (${elapsed} ms)`);
    console.log(`      (300 messages from ${new Set(got.map((m) => m.remoteAddress)).size} nodes delivered ${elapsed} ms after the ETRN)`);
    await waitUntil('empty queues', async () => (await totalQueued()) === 0, { timeoutMs: 10_000 });
    const relayed = await nodes[0].metric('mailcluster_etrn_total', { source: 'mailq' }) +
      await nodes[1].metric('mailcluster_etrn_total', { source: 'mailq' }) + await nodes[2].metric('mailcluster_etrn_total', { source: 'mailq' });
    assert.equal(relayed, 2, 'two peers got the relayed ETRN over MAILQv2, and relayed it no further');
    // the node that took the ETRN logged one line with every node's outcome
    const line = nodes.flatMap((n) => n.logs()).find((l) => l.msg === 'ETRN relayed to the cluster');
    assert.ok(line, 'one log line for the relayed ETRN');
    const peers = line.peers as Array<{ node: string; self: boolean; result: string }>;
    assert.deepEqual(peers.map((p) => [p.node, p.result]), NODE_IPS.map((ip) => [`${ip}/${MAILQ_PORT}`, 'ok']));
    assert.equal(peers.filter((p) => p.self).length, 1, 'exactly one entry is the node itself');
  });

  it('answers 459 to ETRN for a domain that is not a relay domain, 501 to bad syntax, 458 to #queue, 503 inside a transaction', async () => {
    const r = await smtpTalk(ADDR0, SMTP_PORT, [
      'EHLO customer-site.example', 'ETRN foreign.example', 'ETRN', 'ETRN #outq', 'MAIL FROM:<a@client.example>', `ETRN ${DOMAIN}`,
    ]);
    assert.match(r[2].text, /^459 4\.7\.1 Node foreign\.example not allowed/);
    assert.match(r[3].text, /^501 /);
    assert.match(r[4].text, /^458 .*Named queues \(#outq\) are not supported/);
    assert.equal(r[5].code, 250);
    assert.match(r[6].text, /^503 5\.5\.1 ETRN not allowed inside a mail transaction/);
  });

  it('refuses MAILQv2 AUTH with a wrong password, and from outside the ACL, and logs both', async () => {
    const lines = await lineTalk(NODE_IPS[1], MAILQ_PORT, [
      { read: 2 },
      { send: `ETRN ${DOMAIN}`, read: 1 },
      { send: 'AUTH etrn 0123456789abcdef0123456789abcdef', read: 1 },
    ], { localAddress: A(60) });
    assert.equal(lines[0], 'version zmailer 2.0');
    assert.match(lines[1], /^220 MAILQ-V2-CHALLENGE: \d+\.\d+\.\d+$/);
    assert.equal(lines[2], '-BAD; USER MUST AUTHENTICATE');
    assert.equal(lines[3], '-BAD USER OR PASSWORD');
    await nodes[1].waitForLog((l) => l.msg === 'mailq request refused' && l.reason === 'wrong password', 5000);
    // the right password from 127.0.0.1, outside the user's ACL [127.20.0.0]/16
    const [, challenge] = await lineTalk(NODE_IPS[1], MAILQ_PORT, [{ read: 2 }], { localAddress: '127.0.0.1' });
    assert.match(challenge, /^220 MAILQ-V2-CHALLENGE: /);
    const outside = await mailqEtrn({ host: NODE_IPS[1], port: MAILQ_PORT, user: 'etrn', password: PASSWORD, argument: DOMAIN, origin: '[127.0.0.1]@test', timeoutMs: 3000, localAddress: '127.0.0.1' });
    assert.deepEqual(outside, { result: 'refused', line: 'MQ2-AUTH failure occurred: -BAD USER OR AUTHENTICATOR OR CONTACT ADDRESS' });
    await nodes[1].waitForLog((l) => l.msg === 'mailq request refused' && /outside the user's IP ACL/.test(String(l.reason)), 5000);
    // and the right password from inside the ACL works
    const inside = await mailqEtrn({ host: NODE_IPS[1], port: MAILQ_PORT, user: 'etrn', password: PASSWORD, argument: DOMAIN, origin: `[${A(60)}]@test`, timeoutMs: 3000, localAddress: A(60) });
    assert.deepEqual(inside, { result: 'ok', line: "+OK; an ETRN didn't start anything.", started: false });
  });

  it('with a peer down, the reply says so and the other nodes still flush', async () => {
    await customer.stop();
    await sendMessages(ADDR0, SMTP_PORT, 30, 'wave2');
    await waitUntil('30 messages queued', async () => (await totalQueued()) === 30, { timeoutMs: 20_000 });
    const heldOnDead = (await nodes[2].queue()).total;
    // a crash: SIGTERM would drain the node and hand its share to the peers
    await nodes[2].kill9();
    await customer.start();
    try {
      const r = await smtpTalk(NODE_IPS[0], SMTP_PORT, ['EHLO customer-site.example', `ETRN ${DOMAIN}`]);
      const lines = r[2].text.split('\r\n');
      assert.equal(lines[4], `250-2.0.0 Attempting ETRN on cluster node: ${NODE_IPS[2]}/${MAILQ_PORT}`);
      assert.match(lines[5], /^250-2\.0\.0 Unable to connect\(\) to scheduler \(ECONNREFUSED\)$/);
      assert.equal(lines[1], '250-2.0.0 +OK; an ETRN started something.');
      assert.equal(lines.at(-1), '250 2.0.0 ETRN-cluster operation(s) complete');
      await waitUntil('the live nodes\' share of wave2 delivered', () => received('wave2').length === 30 - heldOnDead, { timeoutMs: 20_000 });
      assert.equal((await nodes[0].queue()).total + (await nodes[1].queue()).total, 0);
    } finally {
      await nodes[2].start();
    }
    // the restarted node still holds its share; the next ETRN at Addr[0] brings it
    await smtpTalk(ADDR0, SMTP_PORT, ['EHLO customer-site.example', `ETRN ${DOMAIN}`]);
    await waitUntil('all of wave2 delivered', () => received('wave2').length === 30, { timeoutMs: 20_000 });
  });

  it('draining a node that holds 100 messages empties its queue onto the peers; the next ETRN delivers them', async () => {
    await customer.stop();
    const draining = nodes[0];
    await sendMessages(NODE_IPS[0], SMTP_PORT, 100, 'wave3');
    await waitUntil('100 messages on the node to drain', async () => (await draining.queue()).total === 100, { timeoutMs: 20_000 });
    const others = nodes.slice(1);
    const before = await totalQueued(others);
    const connectionsBefore = customer.connections();

    const first = await draining.admin('/drain', { method: 'POST' });
    assert.equal(first.status, 202);
    assert.equal(JSON.parse(first.body).draining, true);
    const again = await draining.admin('/drain', { method: 'POST' });
    assert.equal(again.status, 202, 'idempotent');
    assert.equal((await draining.admin('/readyz')).status, 503);
    await assert.rejects(smtpTalk(NODE_IPS[0], SMTP_PORT, []), /ECONNREFUSED/, 'the SMTP listener is closed');

    await waitUntil('the drained queue empty', async () => (await draining.queue()).total === 0, { timeoutMs: 60_000 });
    assert.equal(await totalQueued(others), before + 100, 'the peers hold the 100 messages');
    const progress = JSON.parse((await draining.admin('/drain')).body);
    assert.equal(progress.handedOff, 100);
    assert.equal(customer.connections(), connectionsBefore, 'the customer was down: nothing was delivered');

    await customer.start();
    await smtpTalk(NODE_IPS[1], SMTP_PORT, ['EHLO customer-site.example', `ETRN ${DOMAIN}`]);
    await waitUntil('wave3 delivered', () => received('wave3').length >= 100, { timeoutMs: 20_000 });
    const got = received('wave3');
    assert.equal(new Set(got.map((m) => messageIdOf(m.raw))).size, 100);
    assert.equal(got.length, 100, 'none twice');
    assert.ok(got.every((m) => m.remoteAddress !== NODE_IPS[0]), 'delivered by the peers, not the drained node');
    assert.equal((await draining.queue()).total, 0);
  });

  it('follows a reload of its etrn-cluster list without a restart', async () => {
    const node = nodes[1];
    const dir = dirs[1];
    const reloaded = node.waitForLog((l) => l.event === 'reload' && l.result === 'ok', 10_000);
    await node.reload({ etrnCluster: [NODE_IPS[1], NODE_IPS[2]].map((ip) => ({ node: ip, port: MAILQ_PORT, user: 'etrn', password: `@${join(dir, 'config', 'etrn-password')}` })) });
    await reloaded;
    const r = await smtpTalk(NODE_IPS[1], SMTP_PORT, ['EHLO customer-site.example', `ETRN ${DOMAIN}`]);
    const nodesNamed = r[2].text.split('\r\n').filter((l) => l.includes('Attempting ETRN on cluster node'));
    assert.deepEqual(nodesNamed, [NODE_IPS[1], NODE_IPS[2]].map((ip) => `250-2.0.0 Attempting ETRN on cluster node: ${ip}/${MAILQ_PORT}`));
  });

  it('a node killed mid-hand-off loses nothing and duplicates at most what was in flight', async () => {
    await customer.stop();
    const victim = nodes[2];
    await sendMessages(NODE_IPS[2], SMTP_PORT, 100, 'wave4');
    await waitUntil('100 messages on the node to kill', async () => (await victim.queue()).total === 100, { timeoutMs: 20_000 });
    const peerQueued = async () => (await nodes[1].queue()).total + (await nodes[0].queue()).total;
    const peersBefore = await peerQueued();

    assert.equal((await victim.admin('/drain', { method: 'POST' })).status, 202);
    let handedOff = 0;
    await waitUntil('some hand-offs', async () => {
      handedOff = JSON.parse((await victim.admin('/drain')).body).handedOff;
      return handedOff >= 10;
    }, { timeoutMs: 30_000, intervalMs: 5 });
    await victim.kill9();
    assert.ok(handedOff < 100, `killed mid-hand-off (${handedOff} handed off)`);

    await victim.start();
    const left = (await victim.queue()).total;
    const moved = (await peerQueued()) - peersBefore;
    // in flight: at most the drain's concurrency (2) were accepted by a peer but not yet removed here
    assert.ok(left + moved >= 100 && left + moved <= 102, `nothing lost, at most 2 duplicated (${left} left + ${moved} moved)`);
    assert.ok(left > 0 && left < 100, `the restarted node still holds the rest (${left})`);

    // drain again: the rest moves too; then one ETRN delivers every message
    assert.equal((await victim.admin('/drain', { method: 'POST' })).status, 202);
    await waitUntil('the restarted node drained', async () => (await victim.queue()).total === 0, { timeoutMs: 60_000 });
    await customer.start();
    await smtpTalk(NODE_IPS[1], SMTP_PORT, ['EHLO customer-site.example', `ETRN ${DOMAIN}`]);
    await waitUntil('wave4 delivered', () => new Set(received('wave4').map((m) => messageIdOf(m.raw))).size === 100, { timeoutMs: 20_000 });
    await waitUntil('queues empty', async () => (await peerQueued()) === 0, { timeoutMs: 10_000 });
    assert.ok(received('wave4').length <= 102, `at most the in-flight messages twice (${received('wave4').length})`);
  });
});
