// ETRN and MAILQv2 over real sockets against our own listeners (no mail node): the
// smtp-server extension, RFC 1985 replies of a lone node, the rate limit, the MAILQv2
// server's limits, and the fan-out's concurrency and per-peer timeout.
// Addresses 127.20.1.0/24.
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SMTPServer } from 'smtp-server';
import { EtrnService } from '../../../node-image/src/etrn/service.ts';
import type { EtrnSettings } from '../../../node-image/src/etrn/service.ts';
import type { EtrnTarget } from '../../../node-image/src/etrn/parse.ts';
import { enableEtrn } from '../../../node-image/src/etrn/smtp-server-etrn.ts';
import { mailqEtrn } from '../../../node-image/src/mailq/client.ts';
import { MailqServer } from '../../../node-image/src/mailq/server.ts';
import { mailqAuthenticator } from '../../../node-image/src/mailq/protocol.ts';
import { HandoffSender } from '../../../node-image/src/drain/handoff.ts';
import { addressIn } from '../../support/addresses.ts';
import { startCaptureServer } from '../../support/capture-server.ts';
import { lineTalk, smtpTalk } from './wire.ts';

const A = (host: number) => addressIn('127.20.1.0/24', host);
const silent = pino({ level: 'silent' });
const USERS = [
  { user: 'etrn', password: 'pw', rights: ['ETRN'], acls: ['[127.20.0.0]/16'] },
  { user: 'viewer', password: 'pw', rights: ['QQ'], acls: [] },
];

function listen(server: { listen(port: number, host: string, cb: () => void): unknown }, host: string): Promise<void> {
  return new Promise((resolve) => server.listen(0, host, () => resolve()));
}

describe('ETRN on smtp-server (own listener, no peers)', function () {
  this.timeout(20_000);
  let server: SMTPServer;
  let plain: SMTPServer;
  let port = 0;
  let plainPort = 0;
  const flushed: EtrnTarget[] = [];
  let waiting = 3;

  before(async () => {
    const settings: EtrnSettings = {
      hostname: 'solo.example', relayDomains: ['customer.example'], peers: [],
      self: { addresses: [A(1)], names: ['solo.example'], mailqPort: 1174 },
    };
    const service = new EtrnService({
      settings: () => settings,
      flush: (target) => {
        flushed.push(target);
        const started = waiting;
        waiting = 0;
        return { started };
      },
      logger: silent,
      registry: new Registry(),
      rateLimit: { burst: 3, refillSeconds: 60 },
    });
    server = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false });
    enableEtrn(server, (args, ctx) => service.smtpEtrn(args, { clientIp: ctx.remoteAddress, inTransaction: ctx.inTransaction }));
    await listen(server, A(1));
    port = (server.server.address() as net.AddressInfo).port;
    plain = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false });
    await listen(plain, A(2));
    plainPort = (plain.server.address() as net.AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => plain.close(() => r()));
  });

  it('announces ETRN after EHLO and answers with RFC 1985 codes: 253 with the count, then 251', async () => {
    const r = await smtpTalk(A(1), port, ['EHLO client.example', 'ETRN customer.example', 'ETRN @customer.example'], { localAddress: A(10) });
    assert.match(r[1].text, /^250[- ]ETRN$/m);
    assert.equal(r[2].text, '253 2.0.0 OK, 3 pending messages for node customer.example started');
    assert.equal(r[3].text, '251 2.0.0 OK, no messages waiting for node @customer.example');
    assert.deepEqual(flushed, [{ domain: 'customer.example', subdomains: false }, { domain: 'customer.example', subdomains: true }]);
  });

  it('wants HELO/EHLO first', async () => {
    const r = await smtpTalk(A(1), port, ['ETRN customer.example'], { localAddress: A(11) });
    assert.equal(r[1].text, '503 5.5.1 Error: send HELO/EHLO first');
  });

  it('limits ETRN per client with a 458, other clients unaffected', async () => {
    const r = await smtpTalk(A(1), port, ['EHLO c.example', 'ETRN customer.example', 'ETRN customer.example', 'ETRN customer.example', 'ETRN customer.example'], { localAddress: A(12) });
    assert.deepEqual(r.slice(2, 5).map((x) => x.code), [251, 251, 251]);
    assert.match(r[5].text, /^458 4\.7\.0 Unable to queue messages for node customer\.example: too many ETRN requests from 127\.20\.1\.12, try again in \d+ s$/);
    const other = await smtpTalk(A(1), port, ['EHLO c.example', 'ETRN customer.example'], { localAddress: A(13) });
    assert.equal(other[2].code, 251);
  });

  it('leaves servers without ETRN enabled alone', async () => {
    const r = await smtpTalk(A(2), plainPort, ['EHLO client.example', 'ETRN customer.example'], { localAddress: A(10) });
    assert.doesNotMatch(r[1].text, /ETRN/);
    assert.equal(r[2].code, 500);
  });
});

describe('MAILQv2 server and client (own listeners)', function () {
  this.timeout(20_000);
  let server: MailqServer;
  let port = 0;
  const etrns: string[] = [];

  before(async () => {
    server = new MailqServer({
      host: A(20), port: 0, users: () => USERS, logger: silent, idleTimeoutMs: 300, maxLineLength: 200,
      onEtrn: async (req) => {
        etrns.push(`${req.user} ${req.argument} ${req.origin} ${req.clientIp}`);
        return '+OK; an ETRN started something.';
      },
    });
    port = (await server.listen()).port;
  });

  after(() => server.close());

  it('relays one ETRN byte for byte: greeting, challenge, AUTH, ETRN, QUIT', async () => {
    const [greeting, challenge] = await lineTalk(A(20), port, [{ read: 2 }], { localAddress: A(21) });
    assert.equal(greeting, 'version zmailer 2.0');
    const lines = await lineTalk(A(20), port, [{ read: 2 }], { localAddress: A(21) });
    assert.notEqual(lines[1], challenge, 'every connection gets its own challenge');
    const outcome = await mailqEtrn({ host: A(20), port, user: 'etrn', password: 'pw', argument: 'customer.example', origin: '[192.0.2.7]@mx.example', timeoutMs: 2000, localAddress: A(21) });
    assert.deepEqual(outcome, { result: 'ok', line: '+OK; an ETRN started something.', started: true });
    assert.deepEqual(etrns, [`etrn customer.example [192.0.2.7]@mx.example ${A(21)}`]);
  });

  it('refuses ETRN to a user without the right, and says goodbye to QUIT', async () => {
    const got = await new Promise<string[]>((resolve) => {
      const socket = net.connect({ host: A(20), port, localAddress: A(22) });
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        text += d;
        const lines = text.split('\n');
        if (lines.length === 3 && lines[2] === '') {
          socket.write(`AUTH viewer ${mailqAuthenticator(lines[1], 'pw')}\nETRN customer.example x@y\nQUIT\n`);
        }
      });
      socket.on('close', () => resolve(text.split('\n')));
    });
    assert.deepEqual(got.slice(2), ['+OK', '-No ETRN allowed for you.', '+Bye bye', '']);
  });

  it('closes on an overlong line and on idleness', async () => {
    const long = await lineTalk(A(20), port, [{ read: 2 }, { send: 'AUTH ' + 'x'.repeat(500), read: 1 }], { localAddress: A(23) });
    assert.equal(long[2], '-BAD; LINE TOO LONG');
    const t0 = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: A(20), port, localAddress: A(23) });
      socket.on('data', () => {});
      socket.on('close', () => resolve(true));
      setTimeout(() => { socket.destroy(); resolve(false); }, 3000).unref();
    });
    assert.equal(closed, true);
    assert.ok(Date.now() - t0 < 2000, 'the idle timeout (300 ms) closed it');
  });
});

describe('ETRN fan-out over real MAILQv2 listeners', function () {
  this.timeout(20_000);
  const servers: MailqServer[] = [];
  let silentPeer: net.Server;
  let silentPort = 0;

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const s = new MailqServer({
        host: A(30 + i), port: 1174, users: () => USERS, logger: silent,
        // each peer takes 400 ms: the fan-out must ask them at the same time
        onEtrn: () => new Promise((r) => setTimeout(() => r(i === 2 ? "+OK; an ETRN didn't start anything." : '+OK; an ETRN started something.'), 400)),
      });
      await s.listen();
      servers.push(s);
    }
    // accepts and never says a word
    silentPeer = net.createServer(() => {});
    await listen(silentPeer, A(40));
    silentPort = (silentPeer.address() as net.AddressInfo).port;
  });

  after(async () => {
    for (const s of servers) await s.close();
    await new Promise<void>((r) => silentPeer.close(() => r()));
  });

  it('asks every peer at once, flushes itself locally, reports a silent and a dead peer, in configuration order', async () => {
    const local: EtrnTarget[] = [];
    const peer = (host: string, port = 1174) => ({ host, port, user: 'etrn', password: 'pw' });
    const service = new EtrnService({
      settings: () => ({
        hostname: 'node0.example',
        relayDomains: ['customer.example'],
        peers: [peer(A(29)), peer(A(30)), peer(A(31)), peer(A(32)), peer(A(40), silentPort), peer(A(41))],
        self: { addresses: [A(29)], names: ['node0.example'], mailqPort: 1174 },
        localAddress: A(29),
      }),
      flush: (t) => { local.push(t); return { started: 5 }; },
      logger: silent,
      registry: new Registry(),
      peerTimeoutMs: 800,
    });
    const t0 = Date.now();
    const reply = await service.smtpEtrn(' @customer.example', { clientIp: '192.0.2.7', inTransaction: false });
    const elapsed = Date.now() - t0;
    assert.deepEqual(local, [{ domain: 'customer.example', subdomains: true }], 'this node flushed locally, once');
    assert.equal(reply.code, 250);
    assert.deepEqual(reply.lines, [
      `2.0.0 Attempting ETRN on cluster node: ${A(29)}/1174`,
      '2.0.0 +OK; an ETRN started something.',
      `2.0.0 Attempting ETRN on cluster node: ${A(30)}/1174`,
      '2.0.0 +OK; an ETRN started something.',
      `2.0.0 Attempting ETRN on cluster node: ${A(31)}/1174`,
      '2.0.0 +OK; an ETRN started something.',
      `2.0.0 Attempting ETRN on cluster node: ${A(32)}/1174`,
      "2.0.0 +OK; an ETRN didn't start anything.",
      `2.0.0 Attempting ETRN on cluster node: ${A(40)}/${silentPort}`,
      '2.0.0 Timed out after 800 ms at greeting with the scheduler',
      `2.0.0 Attempting ETRN on cluster node: ${A(41)}/1174`,
      '2.0.0 Unable to connect() to scheduler (ECONNREFUSED)',
      '2.0.0 ETRN-cluster operation(s) complete',
    ]);
    assert.ok(elapsed < 1200, `peers asked concurrently, bounded by the per-peer timeout (${elapsed} ms)`);
  });
});

describe('drain hand-off sender', function () {
  this.timeout(20_000);

  it('hands a message to a peer with its envelope and its content byte for byte, from our own address', async () => {
    const peer = await startCaptureServer({ address: A(50) });
    const sender = new HandoffSender(() => ({ hostname: 'node0.example', localAddress: A(51), proxyNetworks: ['127.20.0.0/28'], timeoutMs: 2000 }));
    try {
      const raw = Buffer.from('Received: from x by node0.example; Sun, 29 Nov 2026 12:00:00 +0000\r\nSubject: held\r\n\r\n.leading dot\r\nbody\r\n');
      const result = await sender.send({ host: A(50), port: peer.port }, '', ['a@customer.example', 'b@customer.example'], raw);
      assert.deepEqual(result.accepted, ['a@customer.example', 'b@customer.example']);
      const [m] = await peer.waitForMessages(1, 5000);
      assert.equal(m.mailFrom, '', 'the null sender stays the null sender');
      assert.deepEqual(m.rcptTo, ['a@customer.example', 'b@customer.example']);
      assert.equal(m.remoteAddress, A(51));
      assert.equal(m.heloName, 'node0.example');
      assert.ok(m.raw.equals(raw), 'content unchanged');
    } finally {
      sender.close();
      await peer.stop();
    }
  });
});
