// Large (blob-backed) messages are streamed from their spool file to the destination by
// the delivery thread. What must hold: every byte arrives (a real Postfix smtp-sink keeps
// each message; its hash is checked); a destination that drops the connection mid-DATA
// leaves the message queued, and it arrives whole later (at least once); a blob corrupted
// on disk is never completed at the destination (no final dot) and goes to quarantine.
// Addresses: 127.50.113.0/24 (node .1, client .50, dnsmasq .53, destinations .20-.22).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, openSync, readdirSync, readFileSync, writeSync, closeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { startSmtpSink, type SmtpSink } from '../../support/smtp-sink.ts';
import { waitUntil } from '../../support/processes.ts';
import { commonPort } from './helpers.ts';

const A = (h: number) => harnessAddress(113, h);
const nodeIp = A(1);
const client = A(50);

/** A canonical message (CRLF lines, some starting with a dot, a few lone dots) of about `size` bytes. */
function makeMessage(marker: string, size: number, seed: number): Buffer {
  let x = seed >>> 0;
  const rnd = () => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 8; };
  const lines = [`X-Large-Test: ${marker}`, `Subject: large ${marker}`, ''];
  let n = lines.reduce((a, l) => a + l.length + 2, 0);
  while (n < size) {
    const kind = rnd() % 40;
    let line: string;
    if (kind === 0) line = '.';
    else if (kind === 1) line = `..${'d'.repeat(rnd() % 50)}`;
    else if (kind === 2) line = '';
    else {
      const len = rnd() % 200;
      let s = kind === 3 ? '.' : '';
      for (let i = 0; i < len; i++) s += String.fromCharCode(33 + (rnd() % 94));
      line = s;
    }
    lines.push(line);
    n += line.length + 2;
  }
  return Buffer.from(lines.join('\r\n') + '\r\n', 'latin1');
}

/** What smtp-sink's dump holds for `message`: its lines (dot-unstuffed) with LF line ends. */
function asDumped(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').split('\r\n').join('\n'), 'latin1');
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One SMTP transaction with `message` (dot-stuffed on the wire, written with backpressure); resolves with the final reply. */
function sendMessage(host: string, port: number, to: string, message: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress: client });
    const wire = Buffer.from(message.toString('latin1').split('\r\n').map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n'), 'latin1');
    const cmds = ['EHLO client.test', 'MAIL FROM:<sender@client.test>', `RCPT TO:<${to}>`, 'DATA'];
    let step = 0;
    let buf = '';
    const body = async () => {
      for (let i = 0; i < wire.length; i += 64 * 1024) {
        if (!s.write(wire.subarray(i, i + 64 * 1024))) await new Promise((r) => s.once('drain', r));
      }
      s.write('.\r\n');
    };
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let m = /^(\d{3})([ -])[^\r\n]*\r\n/.exec(buf); m; m = /^(\d{3})([ -])[^\r\n]*\r\n/.exec(buf)) {
        buf = buf.slice(m[0].length);
        if (m[2] === '-') continue;
        const code = Number(m[1]);
        if (step === 0 && code === 220) { s.write(`${cmds[0]}\r\n`); step = 1; continue; }
        if (step >= 1 && step <= 3 && code === 250) { s.write(`${cmds[step]}\r\n`); step++; continue; }
        if (step === 4 && code === 354) { step = 5; void body(); continue; }
        s.end('QUIT\r\n');
        if (step === 5) resolve(m[0].trim()); else reject(new Error(`unexpected reply ${m[0].trim()} at step ${step}`));
        return;
      }
    });
    s.on('error', reject);
  });
}

function queuedId(reply: string): string {
  const m = /queued as (\S+)/.exec(reply);
  assert.ok(m, `a 250 with the queue id: ${reply}`);
  return m[1];
}

/** The dumped copy of the message marked `marker`, if any: its content as dumped. */
function findDumped(sink: SmtpSink, marker: string, length: number): Buffer[] {
  const out: Buffer[] = [];
  for (const f of sink.dumpedFiles()) {
    const d = readFileSync(f);
    const at = d.indexOf(`X-Large-Test: ${marker}\n`);
    if (at < 0) continue;
    const rest = d.subarray(at + length);
    assert.ok(/^\n*$/.test(rest.toString('latin1')), `nothing but line ends after the message in ${f}`);
    out.push(d.subarray(at, at + length));
  }
  return out;
}

/**
 * A destination that accepts the envelope, answers DATA with 354, and drops the connection
 * once `dropAfter` bytes of data have arrived. Counts the transactions it cut off.
 */
function startDropper(address: string, port: number, dropAfter: number): Promise<{ cut: () => number; stop: () => Promise<void> }> {
  let cut = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let inData = false;
    let got = 0;
    let buf = '';
    s.write('220 dropper ESMTP\r\n');
    s.on('data', (d: Buffer) => {
      if (inData) {
        got += d.length;
        if (got >= dropAfter) { cut++; s.destroy(); }
        return;
      }
      buf += d.toString('latin1');
      let i: number;
      while (!inData && (i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i).toUpperCase();
        buf = buf.slice(i + 2);
        if (line.startsWith('EHLO')) s.write('250-dropper\r\n250 PIPELINING\r\n');
        else if (line === 'DATA') { inData = true; got = buf.length; buf = ''; s.write('354 go ahead\r\n'); }
        else if (line.startsWith('QUIT')) s.end('221 bye\r\n');
        else s.write('250 ok\r\n');
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve({
      cut: () => cut,
      stop: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
    }));
  });
}

describe('mail node: large messages streamed to the destination', function () {
  this.timeout(120000);
  let dns: DnsServer;
  let node: MailNode;
  let port: number;
  const sinks: SmtpSink[] = [];

  before(async () => {
    port = await commonPort([A(20), A(21), A(22)]);
    dns = await startDns({
      address: A(53),
      mx: [
        { domain: 'sink.test', host: 'mx.sink.test', preference: 10 },
        { domain: 'drop.test', host: 'mx.drop.test', preference: 10 },
        { domain: 'corrupt.test', host: 'mx.corrupt.test', preference: 10 },
      ],
      a: [{ name: 'mx.sink.test', ip: A(20) }, { name: 'mx.drop.test', ip: A(21) }, { name: 'mx.corrupt.test', ip: A(22) }],
    });
    node = await startMailNode({
      hostname: 'large.node.test', address: nodeIp, relayDomains: ['sink.test', 'drop.test', 'corrupt.test'], dnsServer: dns.server,
      deliveryPort: port, selfAddresses: [nodeIp], maxsize: 20 * 1024 * 1024, retryInterval: 0.3, maxRetryInterval: 0.6,
    });
  });

  after(async () => {
    await node?.close();
    for (const s of sinks) await s.stop();
    await dns?.stop();
  });

  it('delivers every byte of blob-backed messages (several at once, dots and all) to smtp-sink', async () => {
    const sink = await startSmtpSink({ address: A(20), port, dump: true });
    sinks.push(sink);
    const sizes = [256 * 1024 + 1, 3 * 1024 * 1024 + 7, 5 * 1024 * 1024, 2 * 1024 * 1024 + 333];
    const messages = sizes.map((size, i) => ({ marker: `m${i}-${Date.now()}`, size, i }))
      .map((m) => ({ ...m, body: makeMessage(m.marker, m.size, 1000 + m.i) }));
    const replies = await Promise.all(messages.map((m) => sendMessage(nodeIp, node.config.smtpPort, `user${m.i}@sink.test`, m.body)));
    for (const r of replies) assert.match(r, /^250 /);
    await sink.waitForCount(messages.length, 60000);
    await waitUntil('an empty queue', async () => (await node.queue()).total === 0, { timeoutMs: 10000 });
    for (const m of messages) {
      const expected = asDumped(m.body);
      const copies = findDumped(sink, m.marker, expected.length);
      assert.equal(copies.length, 1, `one copy of ${m.marker}`);
      assert.equal(sha(copies[0]), sha(expected), `the content of ${m.marker} (${m.size} bytes) arrived byte for byte`);
    }
    const streamed = node.logs().filter((l) => l.event === 'smtp' && l.result === 'accepted' && l.streamed === true).length;
    assert.equal(streamed, messages.length, 'every message was blob-backed');
  });

  it('a destination that drops the connection mid-DATA: the message stays queued, then arrives whole', async () => {
    const dropper = await startDropper(A(21), port, 1024 * 1024);
    const marker = `drop-${Date.now()}`;
    const body = makeMessage(marker, 4 * 1024 * 1024, 77);
    let sink: SmtpSink | undefined;
    try {
      const id = queuedId(await sendMessage(nodeIp, node.config.smtpPort, 'user@drop.test', body));
      await waitUntil('two transactions cut off mid-DATA', () => dropper.cut() >= 2, { timeoutMs: 20000 });
      const q = await node.queue();
      assert.equal(q.total, 1, 'still queued');
      await dropper.stop();
      sink = await startSmtpSink({ address: A(21), port, dump: true });
      sinks.push(sink);
      await sink.waitForCount(1, 30000);
      await waitUntil('an empty queue', async () => (await node.queue()).total === 0, { timeoutMs: 10000 });
      const expected = asDumped(body);
      const copies = findDumped(sink, marker, expected.length);
      assert.ok(copies.length >= 1, 'delivered at least once');
      for (const c of copies) assert.equal(sha(c), sha(expected), 'every copy is whole');
    } finally {
      await dropper.stop().catch(() => {});
    }
  });

  it('a blob corrupted on disk is never completed at the destination, and is quarantined', async () => {
    // nothing listens at mx.corrupt.test yet: the message waits in the queue
    const marker = `corrupt-${Date.now()}`;
    const body = makeMessage(marker, 2 * 1024 * 1024, 99);
    const id = queuedId(await sendMessage(nodeIp, node.config.smtpPort, 'user@corrupt.test', body));
    await node.waitForLog((l) => l.event === 'delivery' && l.id === id && l.result === 'deferred', 10000);
    const blobDir = join(node.config.postoffice, 'queue', 'blob');
    const file = join(blobDir, id);
    assert.ok(existsSync(file), `blob file ${file}`);
    // one byte near the end flipped: the stream only finds out after sending nearly all of it
    const fd = openSync(file, 'r+');
    try { writeSync(fd, Buffer.from('#'), 0, 1, body.length - 100); } finally { closeSync(fd); }
    const sink = await startSmtpSink({ address: A(22), port, dump: true });
    sinks.push(sink);
    await node.waitForLog((l) => l.event === 'delivery' && l.id === id && typeof l.err === 'string' && /CRC/.test(l.err as string), 20000);
    await waitUntil('the blob in quarantine', () => existsSync(join(node.config.postoffice, 'quarantine')) && readdirSync(join(node.config.postoffice, 'quarantine')).some((f) => f.startsWith(id)), { timeoutMs: 10000 });
    // later attempts fail on the spool's own check, before connecting
    const sessionsAfterCheck = sink.sessions();
    await new Promise((r) => setTimeout(r, 1500));
    await node.waitForLog((l) => l.event === 'delivery' && l.id === id && l.msg === 'cannot read spooled message', 10000);
    assert.equal(sink.count(), 0, 'smtp-sink never saw the end of the corrupt message');
    assert.ok(sink.sessions() <= sessionsAfterCheck + 1, 'the corrupt blob is not sent again and again');
    assert.equal((await node.queue()).total, 1, 'the message stays queued (never acknowledged as delivered)');
  });
});
