// The spool under real faults, with the real node process: corrupted records on disk,
// large messages streamed to blob files across kill -9, and kill -9 at random points while
// compaction copies messages. Addresses: 127.10.111.0/24.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import nodemailer from 'nodemailer';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { makeTempDir, removeTempDir, sleep, waitUntil } from '../../support/processes.ts';
import type { CaptureServer } from '../../support/capture-server.ts';
import { commonPort, header, nodeTestAddress, startCaptures } from './helpers.ts';

const A = (h: number) => nodeTestAddress(111, h);
const nodeIp = A(1);

async function send(node: MailNode, messages: Array<{ seq: string; to: string; body: string }>, parallel = 5): Promise<Set<string>> {
  const acked = new Set<string>();
  const todo = [...messages];
  await Promise.all(Array.from({ length: parallel }, async (_, i) => {
    const t = nodemailer.createTransport({ host: nodeIp, port: node.config.smtpPort, localAddress: A(50 + i), secure: false, ignoreTLS: true, connectionTimeout: 3000, greetingTimeout: 3000, socketTimeout: 10000 });
    for (let m = todo.shift(); m; m = todo.shift()) {
      try {
        await t.sendMail({ envelope: { from: 'load@client.test', to: [m.to] }, raw: `X-Seq: ${m.seq}\r\nSubject: spool\r\n\r\n${m.body}` });
        acked.add(m.seq);
      } catch { /* the node is down: not acknowledged */ }
    }
    t.close();
  }));
  return acked;
}

const segmentFiles = (node: MailNode) => readdirSync(join(node.config.postoffice, 'queue')).filter((n) => n.endsWith('.log')).sort().map((n) => join(node.config.postoffice, 'queue', n));
const bodyHash = (raw: Buffer) => {
  const s = raw.toString('latin1');
  return createHash('sha256').update(s.slice(s.indexOf('\r\n\r\n') + 4)).digest('hex');
};

describe('spool faults on a real node', function () {
  this.timeout(120000);
  let dns: DnsServer;
  let dest: CaptureServer;
  let held: CaptureServer;
  let node: MailNode | undefined;

  before(async () => {
    const port = await commonPort([A(20), A(21)]);
    dns = await startDns({
      address: A(53),
      mx: [{ domain: 'dest.test', host: 'mx.dest.test', preference: 10 }, { domain: 'held.test', host: 'mx.held.test', preference: 10 }],
      a: [{ name: 'mx.dest.test', ip: A(20) }, { name: 'mx.held.test', ip: A(21) }],
    });
    [dest, held] = await startCaptures([A(20), A(21)], port);
    await held.stop();
  });

  const startNode = async (env: Record<string, string> = {}, maxsize = 20 * 1024 * 1024) => {
    node = await startMailNode({
      hostname: 'spool.cluster.test', address: nodeIp, relayNetworks: [`${A(0)}/24`], dnsServer: dns.server, deliveryPort: dest.port,
      selfAddresses: [nodeIp], retryInterval: 0.3, maxRetryInterval: 1, deliveryConcurrency: 10, maxsize,
    }, { env });
    return node;
  };

  afterEach(async () => {
    await node?.close();
    node = undefined;
    dest.clear();
    held.clear();
    await held.stop();
    await dest.start();
  });

  after(async () => {
    await dest?.stop();
    await held?.stop();
    await dns?.stop();
  });

  const delivered = (c: CaptureServer) => c.messages.map((m) => header(m.raw, 'X-Seq') ?? '?');

  it('quarantines corrupted records in the middle of a segment and recovers and delivers every other message', async () => {
    const n = await startNode();
    await dest.stop();
    const msgs = Array.from({ length: 40 }, (_, i) => ({ seq: `q-${i}`, to: `u${i}@dest.test`, body: `line ${i}\r\n`.repeat(30) }));
    const acked = await send(n, msgs);
    assert.equal(acked.size, 40);
    await n.kill9();
    // real bytes on disk: a flipped payload byte in one record, a destroyed header in another
    const [seg] = segmentFiles(n);
    const buf = readFileSync(seg);
    const at = (seq: string) => { const i = buf.indexOf(`X-Seq: ${seq}\r\n`); assert.ok(i > 0, `record of ${seq} in ${seg}`); return i; };
    buf[at('q-12') + 20] ^= 0x55;
    const h = buf.lastIndexOf(Buffer.from('MCL1'), at('q-27'));
    buf.fill(0x2a, h, h + 9); // magic, type and length gone: recovery has to scan for the next record
    writeFileSync(seg, buf);
    await n.start();
    assert.equal(await n.metric('mailcluster_spool_quarantined_total'), 2);
    const files = readdirSync(join(n.config.postoffice, 'quarantine'));
    assert.equal(files.length, 2, files.join(' '));
    const quarantined = files.map((f) => readFileSync(join(n.config.postoffice, 'quarantine', f)).toString('latin1')).join('\n');
    assert.match(quarantined, /X-Seq: q-12\r\n/);
    assert.match(quarantined, /X-Seq: q-27\r\n/);
    assert.equal((await n.queue()).total, 38);
    await dest.start();
    const want = [...acked].filter((s) => s !== 'q-12' && s !== 'q-27');
    await waitUntil('every other message delivered', () => want.every((s) => delivered(dest).includes(s)), { timeoutMs: 30000, intervalMs: 100 });
    await waitUntil('an empty queue', async () => (await n.queue()).total === 0, { timeoutMs: 10000 });
    assert.equal(dest.messages.length, 38, 'each delivered once, the quarantined ones not at all');
    // the cut-out segment recovers cleanly again: nothing new quarantined
    await n.kill9();
    await n.start();
    assert.equal(await n.metric('mailcluster_spool_quarantined_total'), 0);
  });

  it('streams large messages into blob files: 250 after fsync, kept across kill -9, delivered intact, then removed', async () => {
    const n = await startNode();
    await dest.stop();
    const big = (i: number) => Array.from({ length: 40000 }, (_, k) => `big ${i} line ${k} ${'x'.repeat(k % 50)}`).join('\r\n') + '\r\n';
    const msgs = [0, 1, 2].map((i) => ({ seq: `b-${i}`, to: `big${i}@dest.test`, body: big(i) })).concat([{ seq: 's-0', to: 'small@dest.test', body: 'small\r\n' }]);
    const acked = await send(n, msgs, 4);
    assert.equal(acked.size, 4);
    const blobDir = join(n.config.postoffice, 'queue', 'blob');
    assert.equal(readdirSync(blobDir).length, 3, 'one blob per large message');
    assert.ok(n.logs().some((l) => l.result === 'accepted' && l.streamed === true));
    await n.kill9();
    await n.start();
    assert.equal((await n.queue()).total, 4);
    await dest.start();
    await waitUntil('all four delivered', () => dest.messages.length >= 4, { timeoutMs: 30000, intervalMs: 100 });
    for (const m of msgs) {
      const got = dest.messages.find((d) => header(d.raw, 'X-Seq') === m.seq);
      assert.ok(got, m.seq);
      const sent = createHash('sha256').update(m.body).digest('hex');
      assert.equal(bodyHash(got.raw), sent, `${m.seq} delivered byte for byte`);
    }
    await waitUntil('blob files removed', () => readdirSync(blobDir).length === 0, { timeoutMs: 10000 });
    assert.ok(existsSync(blobDir));
  });

  it('a corrupted blob file is quarantined and never delivered as is; other mail flows', async () => {
    const n = await startNode();
    await dest.stop();
    const big = `${'c'.repeat(98)}\r\n`.repeat(5000); // 500 KB: a blob
    const acked = await send(n, [{ seq: 'cb-big', to: 'big@dest.test', body: big }, { seq: 'cb-small', to: 'small@dest.test', body: 'small\r\n' }], 2);
    assert.equal(acked.size, 2);
    await n.kill9();
    const blobDir = join(n.config.postoffice, 'queue', 'blob');
    const [name] = readdirSync(blobDir);
    const file = join(blobDir, name);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0x20;
    writeFileSync(file, bytes);
    await n.start();
    await dest.start();
    await waitUntil('the small one delivered', () => delivered(dest).includes('cb-small'), { timeoutMs: 15000 });
    await waitUntil('the blob quarantined', async () => (await n.metric('mailcluster_spool_quarantined_total')) === 1, { timeoutMs: 15000 });
    assert.ok(readdirSync(join(n.config.postoffice, 'quarantine')).some((f) => f.startsWith(name)));
    await sleep(1500);
    assert.ok(!delivered(dest).includes('cb-big'), 'corrupt content is not delivered');
    assert.equal((await n.queue()).total, 1, 'the message stays queued (an operator decides)');
  });

  it('leaves no blob behind when a client goes away mid-DATA or sends too much', async () => {
    const n = await startNode({}, 1024 * 1024);
    const blobDir = join(n.config.postoffice, 'queue', 'blob');
    const chunk = Buffer.from(`${'z'.repeat(98)}\r\n`.repeat(1000)); // 100 KB
    const session = (chunks: number, finish: boolean) => new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: nodeIp, port: n.config.smtpPort, localAddress: A(60) });
      const script = ['EHLO client.test', 'MAIL FROM:<a@client.test>', 'RCPT TO:<x@dest.test>', 'DATA'];
      let buf = '';
      let step = 0;
      s.on('error', reject);
      s.on('data', (d) => {
        buf += d.toString('latin1');
        let m: RegExpExecArray | null;
        while ((m = /^(\d{3})([ -])[^\r\n]*\r\n/.exec(buf))) {
          buf = buf.slice(m[0].length);
          if (m[2] === '-') continue;
          if (step < script.length) { s.write(script[step++] + '\r\n'); continue; }
          if (step === script.length) {
            step++;
            for (let i = 0; i < chunks; i++) s.write(chunk);
            if (finish) s.write('\r\n.\r\n');
            else setTimeout(() => { s.destroy(); resolve(''); }, 300);
            continue;
          }
          s.destroy();
          resolve(m[0]);
        }
      });
    });
    await session(6, false); // 600 KB then gone: past the threshold, so a blob was started
    assert.match(await session(15, true), /^552/); // 1.5 MB > maxsize
    await waitUntil('no blob left', () => readdirSync(blobDir).length === 0, { timeoutMs: 5000 });
    assert.equal((await n.queue()).total, 0);
  });

  it('a large message on a full filesystem gets 452 4.3.1 (ENOSPC), leaves no blob behind, and the node goes on accepting', async () => {
    const mnt = makeTempDir('spool-tmpfs');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
    try {
      node = await startMailNode({
        hostname: 'spool.cluster.test', address: nodeIp, relayNetworks: [`${A(0)}/24`], dnsServer: dns.server, deliveryPort: dest.port,
        selfAddresses: [nodeIp], retryInterval: 0.3, maxRetryInterval: 1, maxsize: 20 * 1024 * 1024, postoffice: join(mnt, 'spool'),
        // no free-space reserve: this test is about the write itself failing with ENOSPC
        extraSmtpserverLines: ['PARAM queue-minfree 0'],
      });
      await dest.stop();
      const n = node;
      const t = nodemailer.createTransport({ host: nodeIp, port: n.config.smtpPort, localAddress: A(70), secure: false, ignoreTLS: true });
      const body = `${'f'.repeat(98)}\r\n`.repeat(50_000); // 5 MB > the 3 MB filesystem
      await assert.rejects(t.sendMail({ envelope: { from: 'a@client.test', to: ['full@dest.test'] }, raw: `X-Seq: full\r\n\r\n${body}` }), (err: Error & { responseCode?: number }) => err.responseCode === 452);
      await waitUntil('the partial blob removed', () => readdirSync(join(mnt, 'spool', 'queue', 'blob')).length === 0, { timeoutMs: 5000 });
      const ok = await t.sendMail({ envelope: { from: 'a@client.test', to: ['small@dest.test'] }, raw: 'X-Seq: small\r\n\r\nsmall\r\n' });
      assert.match(ok.response, /^250/);
      t.close();
      await dest.start();
      await waitUntil('the small one delivered', () => delivered(dest).includes('small'), { timeoutMs: 15000 });
    } finally {
      await node?.close();
      node = undefined;
      execFileSync('umount', [mnt]);
      removeTempDir(mnt);
    }
  });

  it('rewrites a mostly-live segment only when the disk is short of space, and keeps every message', async () => {
    const tiny = { MAILCLUSTER_SPOOL_SEGMENT_BYTES: String(64 * 1024), MAILCLUSTER_SPOOL_COMPACT_INTERVAL_MS: '20' };
    const run = async (short: boolean) => {
      const n = await startNode(short ? { ...tiny, MAILCLUSTER_SPOOL_LOW_SPACE_BYTES: String(1e15) } : tiny);
      // 3 of 5 held, 2 of 5 delivered: every segment stays about 60% live
      const msgs = Array.from({ length: 150 }, (_, i) => ({ seq: `${short ? 's' : 'r'}-${i}`, to: i % 5 < 3 ? `h${i}@held.test` : `d${i}@dest.test`, body: `mostly live ${i}\r\n`.repeat(100) }));
      const acked = await send(n, msgs, 1);
      assert.equal(acked.size, 150);
      await waitUntil('the deliverable ones delivered', async () => (await n.queue()).total === 90, { timeoutMs: 20000 });
      await sleep(1500);
      const copied = await n.metric('mailcluster_spool_bytes_written_total', { reason: 'compaction' });
      await n.kill9();
      await n.start();
      assert.equal((await n.queue()).total, 90);
      await n.close();
      node = undefined;
      return copied;
    };
    assert.equal(await run(false), 0, 'a roomy disk never rewrites a mostly-live segment');
    assert.ok(await run(true) > 0, 'a short disk does');
  });

  it('keeps every message exactly once through kill -9 at random points during compaction', async () => {
    // small segments and a fast maintenance loop: compaction runs all the time
    const env = { MAILCLUSTER_SPOOL_SEGMENT_BYTES: String(48 * 1024), MAILCLUSTER_SPOOL_COMPACT_INTERVAL_MS: '20' };
    const n = await startNode(env);
    const heldAcked = new Set<string>();
    let kills = 0;
    let compacted = 0;
    for (let round = 0; round < 6; round++) {
      // mostly deliverable mail (its segments go sparse) and some held mail (copied forward)
      const msgs = Array.from({ length: 60 }, (_, i) => ({ seq: `r${round}-${i}`, to: i % 4 === 0 ? `h${i}@held.test` : `d${i}@dest.test`, body: `round ${round} message ${i}\r\n`.repeat(20 + (i % 7) * 10) }));
      const sending = send(n, msgs, 6);
      await sleep(100 + Math.floor(Math.random() * 400));
      const copiedNow = () => n.metric('mailcluster_spool_bytes_written_total', { reason: 'compaction' }).catch(() => 0);
      if (round % 2 === 1) {
        // kill right when a compaction has written something (it is usually still copying)
        await waitUntil('a compaction', async () => (await copiedNow()) > 0, { timeoutMs: 15000, intervalMs: 5 });
      }
      compacted += await copiedNow();
      await n.kill9();
      kills++;
      const acked = await sending;
      for (const s of acked) if (s.includes('-') && Number(s.split('-')[1]) % 4 === 0) heldAcked.add(s);
      await n.start();
      await sleep(Math.floor(Math.random() * 300));
    }
    // the held mail is all there, each once (GET /queue counts messages; ids are unique)
    await waitUntil('every deliverable message gone from the queue', async () => (await n.queue()).total <= heldAcked.size + 60, { timeoutMs: 20000 });
    await n.kill9();
    await n.start();
    await held.start();
    await waitUntil(`all ${heldAcked.size} held messages delivered`, () => [...heldAcked].every((s) => delivered(held).includes(s)), { timeoutMs: 40000, intervalMs: 100 });
    await waitUntil('an empty queue', async () => (await n.queue()).total === 0, { timeoutMs: 20000 });
    const counts = new Map<string, number>();
    for (const s of delivered(held)) counts.set(s, (counts.get(s) ?? 0) + 1);
    assert.deepEqual([...counts].filter(([, c]) => c > 1), [], 'no held message delivered twice');
    assert.equal(await n.metric('mailcluster_spool_quarantined_total'), 0);
    assert.ok(compacted > 0, 'compaction ran between the kills');
    console.log(`      ${kills} kills, ${heldAcked.size} held messages, ${compacted} bytes copied by compaction`);
  });
});
