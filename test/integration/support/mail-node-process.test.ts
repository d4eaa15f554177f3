// The mail-node harness against the real node: start until /readyz, relay one message
// to smtp-sink through dnsmasq's MX, read /queue and /metrics and the pino log, reload,
// restart on the same spool, and report a broken config as a start-up failure.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { repoRoot, startMailNode, type MailNode } from '../../support/mail-node.ts';
import { startSmtpSink, type SmtpSink } from '../../support/smtp-sink.ts';
import { swaks } from '../../support/swaks.ts';
import { waitUntil } from '../../support/processes.ts';

describe('mail-node harness: a real node process', function () {
  this.timeout(40000);
  let sink: SmtpSink;
  let dns: DnsServer;
  let node: MailNode | undefined;

  before(async function () {
    if (!existsSync(join(repoRoot, 'node-image', 'src', 'main.ts'))) this.skip();
    sink = await startSmtpSink({ address: harnessAddress(15, 100) });
    dns = await startDns({ address: harnessAddress(15, 53), mx: [{ domain: 'dest.test', host: 'sink.test', preference: 10 }], a: [{ name: 'sink.test', ip: sink.address }] });
  });

  after(async () => {
    await node?.close();
    await dns?.stop();
    await sink?.stop();
  });

  it('starts, relays, reports, reloads and restarts on the same spool', async () => {
    node = await startMailNode({
      hostname: 'harness-node.test',
      address: harnessAddress(15, 1),
      relayNetworks: ['127.0.0.0/8'],
      dnsServer: dns.server,
      deliveryPort: sink.port,
      selfAddresses: [harnessAddress(15, 1)],
    }, { kubeletStyle: true });
    assert.ok(node.running());
    const sent = await swaks({ server: node.smtp, to: 'someone@dest.test', body: 'through the node' });
    assert.equal(sent.lastCode, 250, sent.transcript);
    await sink.waitForCount(1, 10000);
    // smtp-sink counts at the final ".", a moment before the node has its 250 and dequeues.
    const n = node;
    await waitUntil('the node queue to empty', async () => (await n.queue()).total === 0, { timeoutMs: 10000 });
    assert.ok((await node.metric('mailcluster_messages_received_total')) >= 1);
    assert.ok(node.logs().length > 0, 'pino lines are captured');

    await node.reload({ maxsize: 1000 });
    // The node notices the ..data swap on its own; a message past the new limit is refused.
    let big;
    for (let i = 0; i < 50; i++) {
      big = await swaks({ server: node.smtp, to: 'someone@dest.test', size: 5000 });
      if (big.lastCode === 552) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(big!.lastCode, 552, big!.transcript);

    const before = node.pid();
    await node.restart();
    assert.notEqual(node.pid(), before);
    assert.equal((await node.queue()).total, 0);
  });

  it('a broken config fails start-up with the node\'s own message', async () => {
    const broken = await startMailNode({ hostname: 'broken.test', address: harnessAddress(15, 2), extraSmtpserverLines: ['PARAM no-such-param 1'] }, { start: false, readyTimeoutMs: 10000 });
    try {
      await assert.rejects(broken.start(), /no-such-param/);
      assert.equal(broken.running(), false);
    } finally {
      await broken.close();
    }
  });
});
