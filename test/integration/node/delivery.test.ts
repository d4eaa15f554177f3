// Retry with backoff until the destination comes back, DSN bounces on 5xx (never to the
// null sender), the queue lifetime, /queue and /metrics. Addresses: 127.10.2.0/24.
import assert from 'node:assert/strict';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { swaks } from '../../support/swaks.ts';
import { sleep, waitUntil } from '../../support/processes.ts';
import type { CaptureServer } from '../../support/capture-server.ts';
import { commonPort, header, nodeTestAddress, startCaptures } from './helpers.ts';

const A = (h: number) => nodeTestAddress(2, h);
const nodeIp = A(1);
const client = A(50);

describe('mail node: delivery, retry, bounces', function () {
  this.timeout(60000);
  let dns: DnsServer;
  let node: MailNode;
  let dest: CaptureServer;
  let senders: CaptureServer;
  let flaky: CaptureServer;

  before(async () => {
    const port = await commonPort([A(20), A(21), A(22)]);
    dns = await startDns({
      address: A(53),
      mx: [
        { domain: 'dest.test', host: 'mx.dest.test', preference: 10 },
        { domain: 'client.test', host: 'mx.client.test', preference: 10 },
        { domain: 'flaky.test', host: 'mx.flaky.test', preference: 10 },
      ],
      a: [{ name: 'mx.dest.test', ip: A(20) }, { name: 'mx.client.test', ip: A(21) }, { name: 'mx.flaky.test', ip: A(22) }],
    });
    [dest, senders, flaky] = await startCaptures([A(20), A(21), A(22)], port);
    await flaky.stop(); // down at first
    node = await startMailNode({
      hostname: 'node2.cluster.test',
      address: nodeIp,
      relayDomains: ['dest.test', 'flaky.test'],
      dnsServer: dns.server,
      deliveryPort: port,
      selfAddresses: [nodeIp],
      retryInterval: 0.3,
      maxRetryInterval: 0.6,
      queueLifetime: 3,
    });
  });

  after(async () => {
    await node?.close();
    for (const c of [dest, senders, flaky]) await c?.stop();
    await dns?.stop();
  });

  it('retries with backoff while the destination is down, then delivers when it comes back', async () => {
    const r = await swaks({ server: node.smtp, from: 'alice@client.test', to: 'bob@flaky.test', localAddress: client, headers: ['X-Test: retry'], body: 'x' });
    assert.equal(r.lastCode, 250);
    await node.waitForLog((l) => l.event === 'delivery' && l.domain === 'flaky.test' && l.result === 'deferred' && l.attempt === 2, 10000);
    const q = await node.queue();
    assert.equal(q.total, 1);
    assert.equal(q.deferred, 1);
    assert.ok(await node.metric('mailcluster_messages_deferred_total') >= 2);
    await flaky.start();
    const [msg] = await flaky.waitForMessages(1, 10000);
    assert.equal(header(msg.raw, 'X-Test'), 'retry');
    assert.equal(msg.mailFrom, 'alice@client.test');
    await waitUntil('an empty queue', async () => (await node.queue()).total === 0, { timeoutMs: 5000 });
    assert.equal(senders.messages.length, 0, 'no bounce');
  });

  it('bounces a 5xx recipient with a multipart/report DSN from the null sender, delivers the others', async () => {
    dest.clear(); senders.clear();
    dest.setReply({ stage: 'rcpt', code: 550, message: '5.1.1 no such user here', recipients: ['nobody@dest.test'] });
    try {
      const r = await swaks({ server: node.smtp, from: 'alice@client.test', to: ['nobody@dest.test', 'bob@dest.test'], localAddress: client, headers: ['X-Test: bounce-me'], body: 'x' });
      assert.equal(r.lastCode, 250);
      const [delivered] = await dest.waitForMessages(1, 10000);
      assert.deepEqual(delivered.rcptTo, ['bob@dest.test']);
      const [dsn] = await senders.waitForMessages(1, 10000);
      assert.equal(dsn.mailFrom, '', 'a DSN comes from the null sender');
      assert.deepEqual(dsn.rcptTo, ['alice@client.test']);
      const text = dsn.raw.toString();
      assert.match(header(dsn.raw, 'Content-Type') ?? '', /multipart\/report; report-type=delivery-status/);
      assert.match(text, /Final-Recipient: rfc822; nobody@dest\.test/);
      assert.match(text, /Action: failed/);
      assert.match(text, /Status: 5\.1\.1/);
      assert.match(text, /X-Test: bounce-me/, 'the original headers come back');
      assert.doesNotMatch(text, /Final-Recipient: rfc822; bob@dest\.test/);
      assert.ok(await node.metric('mailcluster_messages_bounced_total') >= 1);
      await waitUntil('an empty queue', async () => (await node.queue()).total === 0, { timeoutMs: 5000 });
    } finally {
      dest.setReply(undefined);
    }
  });

  it('never bounces to the null sender', async () => {
    senders.clear();
    dest.setReply({ stage: 'data', code: 554, message: '5.7.1 content rejected' });
    try {
      const r = await swaks({ server: node.smtp, from: '<>', to: 'bob@dest.test', localAddress: client, body: 'x' });
      assert.equal(r.lastCode, 250, r.transcript);
      await node.waitForLog((l) => l.event === 'bounce' && l.skipped === 'null sender', 10000);
      await waitUntil('an empty queue', async () => (await node.queue()).total === 0, { timeoutMs: 5000 });
      await sleep(300);
      assert.equal(senders.messages.length, 0);
    } finally {
      dest.setReply(undefined);
    }
  });

  it('bounces when the queue lifetime ends', async () => {
    senders.clear();
    await flaky.stop();
    const r = await swaks({ server: node.smtp, from: 'alice@client.test', to: 'late@flaky.test', localAddress: client, headers: ['X-Test: expire'], body: 'x' });
    assert.equal(r.lastCode, 250);
    const [dsn] = await senders.waitForMessages(1, 15000);
    assert.match(dsn.raw.toString(), /queue lifetime expired/);
    assert.match(dsn.raw.toString(), /Final-Recipient: rfc822; late@flaky\.test/);
    assert.equal((await node.queue()).total, 0);
  });

  it('reports the queue (total, per domain, oldest) and metrics', async () => {
    await flaky.stop();
    for (const to of ['a@flaky.test', 'b@flaky.test']) {
      assert.equal((await swaks({ server: node.smtp, from: 'alice@client.test', to, localAddress: client, body: 'x' })).lastCode, 250);
    }
    await waitUntil('two deferred', async () => (await node.queue()).deferred === 2, { timeoutMs: 5000 });
    const q = await node.queue();
    assert.equal(q.total, 2);
    assert.deepEqual(q.domains, { 'flaky.test': 2 });
    assert.ok(typeof q.oldest === 'string' && Date.parse(q.oldest) <= Date.now());
    const metrics = await node.metrics();
    for (const name of ['mailcluster_messages_received_total', 'mailcluster_messages_delivered_total', 'mailcluster_messages_deferred_total',
      'mailcluster_messages_bounced_total', 'mailcluster_queue_messages', 'mailcluster_delivery_duration_seconds_bucket',
      'mailcluster_smtp_connections_total', 'mailcluster_smtp_connections_active', 'mailcluster_spool_fsyncs_total']) {
      assert.match(metrics, new RegExp(`^${name}`, 'm'), name);
    }
    assert.equal(await node.metric('mailcluster_queue_messages'), 2);
    assert.ok(await node.metric('mailcluster_messages_received_total') >= 5);
    assert.equal((await node.admin('/healthz')).status, 200);
  });
});
