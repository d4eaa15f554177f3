// Open sessions are counted until they really end, STARTTLS ones included. smtp-server's
// STARTTLS strips every listener from the accepted socket, so a count kept only by that
// socket's 'close' leaked one per TLS session: a drain then never reported drained, and the
// connection limit filled up. Real node, real TLS sessions (nodemailer), real capture server.
// Addresses: 127.10.95.0/24.
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { nodeTestAddress } from './helpers.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { freePort } from '../../support/addresses.ts';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
import { makeSelfSigned } from '../../support/pki.ts';

const A = (h: number) => nodeTestAddress(95, h);

describe('open sessions are counted until they end, STARTTLS included', function () {
  this.timeout(60_000);
  let dir: string;
  let dns: DnsServer;
  let dest: CaptureServer;
  let node: MailNode;

  before(async () => {
    dir = makeTempDir('sessions');
    const cert = makeSelfSigned(dir, 'node', ['smtp.sessions.test']);
    dest = await startCaptureServer({ address: A(20), port: await freePort(A(20)) });
    dns = await startDns({ address: A(53), mx: [{ domain: 'dest.test', host: 'mx.dest.test', preference: 10 }], a: [{ name: 'mx.dest.test', ip: A(20) }] });
    node = await startMailNode({
      hostname: 'smtp.sessions.test', address: A(1), relayDomains: ['dest.test'], dnsServer: dns.server, deliveryPort: dest.port,
      selfAddresses: [A(1)], tlsCertFile: cert.cert, tlsKeyFile: cert.key,
    });
  });

  after(async () => {
    await node?.close();
    await dns?.stop();
    await dest?.stop();
    if (dir) removeTempDir(dir);
  });

  it('forgets every plain and STARTTLS session once it ends, and a drain then reports drained', async () => {
    const [host, port] = node.smtp.split(':');
    const send = async (i: number, tls: boolean) => {
      const t = nodemailer.createTransport({
        host, port: Number(port), localAddress: A(100 + i), secure: false,
        ...(tls ? { requireTLS: true, tls: { rejectUnauthorized: false } } : { ignoreTLS: true }),
      });
      try {
        const info = await t.sendMail({ envelope: { from: 'a@client.test', to: [`u${i}@dest.test`] }, raw: `Subject: ${i}\r\nX-Seq: ${i}\r\n\r\nsession ${i}\r\n` });
        assert.match(info.response, /^250/);
      } finally { t.close(); }
    };
    await Promise.all(Array.from({ length: 12 }, (_, i) => send(i, i % 3 !== 0))); // 8 STARTTLS, 4 plain
    await dest.waitForMessages(12, 20_000);
    assert.ok(dest.messages.length >= 12);
    await waitUntil('no open session left', async () => JSON.parse((await node.admin('/queue')).body).sessions === 0, { timeoutMs: 10_000, intervalMs: 100 });
    assert.equal(await node.metric('mailcluster_smtp_connections_active'), 0, 'the active-connections gauge is back to 0');
    assert.equal((await node.admin('/drain', { method: 'POST' })).status, 202);
    await waitUntil('drained', async () => JSON.parse((await node.admin('/queue')).body).drained === true, { timeoutMs: 15_000, intervalMs: 200 });
  });
});
