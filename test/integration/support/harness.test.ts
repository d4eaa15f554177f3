// Self-tests of the shared harness: each helper starts the real program, and the
// program does what the helper promises. Addresses: 127.50.10.0 - 127.50.19.255.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { harnessAddress, freePort, addressIn } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { startSmtpSink } from '../../support/smtp-sink.ts';
import { startCaptureServer } from '../../support/capture-server.ts';
import { startHaproxy } from '../../support/haproxy.ts';
import { swaks } from '../../support/swaks.ts';
import { smtpSource } from '../../support/smtp-source.ts';
import { isListening, sleep } from '../../support/processes.ts';

describe('test harness (real peers)', function () {
  this.timeout(20000);

  it('addressIn stays inside its range and inside 127.0.0.0/8', () => {
    assert.equal(addressIn('127.50.0.0/16', 257), '127.50.1.1');
    assert.equal(harnessAddress(10, 1), '127.50.10.1');
    assert.throws(() => addressIn('127.50.0.0/16', 65536), /outside/);
    assert.throws(() => addressIn('10.0.0.0/8', 1), /not a loopback/);
  });

  it('dnsmasq answers the MX, A and AAAA records it was given, and nothing else', async () => {
    const dns = await startDns({
      address: harnessAddress(10, 1),
      mx: [
        { domain: 'customer.test', host: 'mx.customer.test', preference: 10 },
        { domain: 'customer.test', host: 'smtp.isp.test', preference: 20 },
      ],
      a: [{ name: 'mx.customer.test', ip: '127.50.10.2' }],
      aaaa: [{ name: 'mx.customer.test', ip: '::1' }],
    });
    try {
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([dns.server]);
      const mx = (await resolver.resolveMx('customer.test')).sort((a, b) => a.priority - b.priority);
      assert.deepEqual(mx.map((r) => [r.priority, r.exchange]), [[10, 'mx.customer.test'], [20, 'smtp.isp.test']]);
      assert.deepEqual(await resolver.resolve4('mx.customer.test'), ['127.50.10.2']);
      assert.deepEqual(await resolver.resolve6('mx.customer.test'), ['::1']);
      // A name with an A record but no MX: NODATA (routing falls back to the A record).
      await assert.rejects(resolver.resolveMx('mx.customer.test'), { code: 'ENODATA' });
      // Anything else does not exist (never forwarded upstream).
      await assert.rejects(resolver.resolve4('example.com'), { code: 'ENOTFOUND' });
    } finally {
      await dns.stop();
    }
    assert.equal(isListening(dns.address, dns.port), false);
  });

  it('smtp-sink counts a message sent by swaks and rejects as told', async () => {
    const sink = await startSmtpSink({ address: harnessAddress(11, 1) });
    const rejecting = await startSmtpSink({ address: harnessAddress(11, 2), hardReject: ['RCPT'], hardReply: '550 5.1.1 no such user' });
    const deferring = await startSmtpSink({ address: harnessAddress(11, 3), softReject: ['DATA'] });
    try {
      const ok = await swaks({ server: `${sink.address}:${sink.port}`, to: 'someone@dest.test', body: 'hello' });
      assert.equal(ok.exitCode, 0, ok.transcript);
      assert.equal(ok.lastCode, 250);
      await sink.waitForCount(1, 5000);
      assert.equal(sink.count(), 1);

      const hard = await swaks({ server: `${rejecting.address}:${rejecting.port}`, to: 'someone@dest.test' });
      assert.notEqual(hard.exitCode, 0);
      assert.equal(hard.lastCode, 550, hard.transcript);
      assert.match(hard.lastReply!.text, /no such user/);

      const soft = await swaks({ server: `${deferring.address}:${deferring.port}`, to: 'someone@dest.test' });
      assert.equal(soft.lastCode, 450, soft.transcript);
    } finally {
      await Promise.all([sink.stop(), rejecting.stop(), deferring.stop()]);
    }
  });

  it('smtp-sink with dump keeps each message; smtp-source drives load into it', async () => {
    const sink = await startSmtpSink({ address: harnessAddress(11, 4), dump: true });
    try {
      const run = await smtpSource({ server: `${sink.address}:${sink.port}`, sessions: 4, count: 40, size: 1000, from: 'a@src.test', to: 'b@dest.test' });
      assert.equal(run.exitCode, 0, run.stderr);
      assert.equal(run.completed, 40);
      assert.ok(run.elapsedMs > 0);
      await sink.waitForCount(40, 5000);
      // Dump files are written as each transaction ends; give the last ones a moment.
      for (let i = 0; i < 50 && sink.dumpedFiles().length < 40; i++) await sleep(20);
      assert.equal(sink.dumpedFiles().length, 40);
    } finally {
      await sink.stop();
    }
  });

  it('capture server records envelope, content and the delivering address; goes down and comes back', async () => {
    const capture = await startCaptureServer({ address: harnessAddress(12, 1) });
    const server = `${capture.address}:${capture.port}`;
    try {
      const sent = await swaks({ server, from: 'alice@src.test', to: ['bob@dest.test', 'carol@dest.test'], body: 'hello capture', localAddress: harnessAddress(12, 9) });
      assert.equal(sent.exitCode, 0, sent.transcript);
      const [msg] = await capture.waitForMessages(1, 5000);
      assert.equal(msg.mailFrom, 'alice@src.test');
      assert.deepEqual(msg.rcptTo, ['bob@dest.test', 'carol@dest.test']);
      assert.equal(msg.remoteAddress, harnessAddress(12, 9));
      assert.match(msg.raw.toString(), /hello capture/);

      await capture.stop();
      assert.equal(capture.listening(), false);
      const down = await swaks({ server, to: 'bob@dest.test', timeoutSeconds: 5 });
      assert.notEqual(down.exitCode, 0);
      assert.equal(down.lastCode, undefined);

      await capture.start();
      capture.setReply({ stage: 'rcpt', code: 451, message: 'greylisted' });
      const deferred = await swaks({ server, to: 'bob@dest.test' });
      assert.equal(deferred.lastCode, 451, deferred.transcript);
      assert.equal(capture.refusals.length, 1);

      capture.setReply({ stage: 'data', code: 554, message: 'no thanks' });
      const rejected = await swaks({ server, to: 'bob@dest.test' });
      assert.equal(rejected.lastCode, 554, rejected.transcript);

      capture.setReply(undefined);
      const again = await swaks({ server, to: 'dave@dest.test' });
      assert.equal(again.lastCode, 250, again.transcript);
      assert.equal(capture.messages.length, 2);
      assert.deepEqual(capture.messages[1].rcptTo, ['dave@dest.test']);
    } finally {
      await capture.stop();
    }
  });

  it('haproxy forwards round-robin with a PROXY v2 header carrying the client address', async () => {
    const backendAddress = harnessAddress(13, 2);
    const seen: Array<{ backend: number; source: string; payload: string; from: string }> = [];
    const servers: Server[] = [];
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort(backendAddress);
      const server = createServer((socket) => readProxyV2(socket, (source, payload) => seen.push({ backend: i, source, payload, from: socket.remoteAddress ?? '' })));
      await new Promise<void>((resolve) => server.listen(port, backendAddress, resolve));
      servers.push(server);
      ports.push(port);
    }
    const lb = await startHaproxy({ address: harnessAddress(13, 1), backends: ports.map((port) => ({ address: backendAddress, port })), proxyV2: true, sourceAddress: harnessAddress(13, 1) });
    try {
      const client = harnessAddress(13, 7);
      for (let i = 0; i < 4; i++) await sendAndClose(lb.address, lb.port, client, `hello ${i}`);
      for (let i = 0; i < 100 && seen.length < 4; i++) await sleep(20);
      assert.equal(seen.length, 4);
      assert.ok(seen.every((s) => s.source === client), JSON.stringify(seen));
      assert.deepEqual(seen.map((s) => s.payload).sort(), ['hello 0', 'hello 1', 'hello 2', 'hello 3']);
      assert.deepEqual([...new Set(seen.map((s) => s.backend))].sort(), [0, 1], 'both backends got connections');
      assert.ok(seen.every((s) => s.from === harnessAddress(13, 1)), 'haproxy connects from its source address');
    } finally {
      await lb.stop();
      for (const s of servers) s.close();
    }
    assert.equal(isListening(lb.address, lb.port), false);
  });
});

const proxyV2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Reads a PROXY v2 header (IPv4) off a socket, then the rest until EOF. */
function readProxyV2(socket: Socket, done: (source: string, payload: string) => void): void {
  let buffer = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => { buffer = Buffer.concat([buffer, c]); });
  socket.on('end', () => {
    if (buffer.length < 16 || !buffer.subarray(0, 12).equals(proxyV2Signature)) return done('no PROXY v2 header', buffer.toString());
    const length = buffer.readUInt16BE(14);
    const family = buffer[13] >> 4;
    const source = family === 1 ? [...buffer.subarray(16, 20)].join('.') : `family ${family}`;
    done(source, buffer.subarray(16 + length).toString());
  });
  socket.on('error', () => { /* test checks what arrived */ });
}

function sendAndClose(host: string, port: number, localAddress: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress }, () => socket.end(text));
    socket.on('close', () => resolve());
    socket.on('error', reject);
    socket.resume();
  });
}
