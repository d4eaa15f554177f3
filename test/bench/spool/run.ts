// Spool benchmark (issue 11). Prints figures; asserts nothing.
//  (a) backlog: a real node takes a deferred backlog (its destination refuses connections),
//      then sits idle for an hour compressed into minutes (retry intervals and the spool's
//      policy clock scaled by --scale): bytes written ÷ backlog (goal ≤ 0.05).
//  (b) steady relay with 10% of the mail deferred, for a simulated day: the Spool itself on
//      a real filesystem driven by a simulated clock (arrivals, deliveries, retries with
//      backoff, holds of 1-24 h): bytes written ÷ bytes accepted (goal ≤ 1.3).
//  (c) durable acceptance ÷ fsync-free acceptance (goal ≥ 0.7): a real node over SMTP
//      (smtp-source, 20 sessions) with and without fdatasync (MAILCLUSTER_SPOOL_FSYNC=0,
//      a benchmark-only switch); then the Spool alone with 64 writers, for reference.
//
//   npm run bench:spool                       # all three; (a) with a 1 GB backlog
//   npm run bench:spool -- --only a --backlog-mb 256 --idle-s 120
//   options: --only a|b|c --backlog-mb N --message-kb N --idle-s N --scale N --day-msg-kb N --c-sizes 1024,102400
//
// Addresses: 127.50.112.0/24 (node .2, dnsmasq .53, clients .100-.119).
import { readFileSync, statSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { startMailNode } from '../../support/mail-node.ts';
import { makeTempDir, removeTempDir, sleep, takeLock } from '../../support/processes.ts';
import { parseFlags, positiveInt } from '../stats.ts';
import { smtpSource } from '../../support/smtp-source.ts';
import { Spool } from '../../../node-image/src/spool/spool.ts';
import type { MessageMeta } from '../../../node-image/src/spool/records.ts';

const flags = parseFlags(process.argv.slice(2), { only: 'value', 'backlog-mb': 'value', 'message-kb': 'value', 'idle-s': 'value', scale: 'value', 'day-msg-kb': 'value', 'c-sizes': 'value' });
const only = flags.get('only');
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
takeLock('bench-spool');
const A = (h: number) => harnessAddress(112, h);
const MB = 1024 * 1024;

function log(line: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
}

const meta = (id: string, size: number, now: number): MessageMeta => ({ id, from: 'a@x.test', rcpts: [{ address: `${id}@y.test`, status: 'pending' }], receivedAt: now, attempts: 0, nextAttempt: now, size });
const written = (s: Spool) => Object.values(s.stats.bytesWritten).reduce((a, b) => a + b, 0);

async function backlog(): Promise<void> {
  const backlogBytes = positiveInt(flags, 'backlog-mb', 1024) * MB;
  const messageBytes = positiveInt(flags, 'message-kb', 100) * 1024;
  const idleS = positiveInt(flags, 'idle-s', 180);
  const scale = positiveInt(flags, 'scale', Math.round(3600 / idleS));
  const dns = await startDns({ address: A(53), mx: [{ domain: 'held.bench.test', host: 'mx.held.bench.test', preference: 10 }], a: [{ name: 'mx.held.bench.test', ip: A(21) }] });
  // an hour of a real node compressed by `scale`: first retry after 5 min, then at most hourly
  const node = await startMailNode({
    hostname: 'spool.bench.test', address: A(2), relayDomains: ['held.bench.test'], dnsServer: dns.server, deliveryPort: 2525,
    selfAddresses: [A(2)], retryInterval: 300 / scale, maxRetryInterval: 3600 / scale, queueLifetime: 5 * 86400, maxConnections: 200,
  }, { env: { MAILCLUSTER_SPOOL_CLOCK_SCALE: String(scale) } });
  try {
    const pid = node.pid()!;
    const io = () => Number(/^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
    const count = Math.ceil(backlogBytes / messageBytes);
    const body = `${'b'.repeat(76)}\r\n`.repeat(Math.floor(messageBytes / 78));
    const t0 = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const t = nodemailer.createTransport({ host: A(2), port: node.config.smtpPort, localAddress: A(100 + i), secure: false, ignoreTLS: true, pool: false });
      for (let k = next++; k < count; k = next++) {
        await t.sendMail({ envelope: { from: 'bench@client.test', to: [`u${k % 500}@held.bench.test`] }, raw: `Subject: backlog ${k}\r\n\r\n${body}` });
      }
      t.close();
    }));
    const acceptS = (Date.now() - t0) / 1000;
    await sleep(3000); // the first (failing) attempts and their updates
    const metric = async () => (['accept', 'compaction', 'metadata'] as const).map(async (r) => [r, await node.metric('mailcluster_spool_bytes_written_total', { reason: r })] as const);
    const snapshot = async () => Object.fromEntries(await Promise.all(await metric())) as Record<string, number>;
    const live = await node.metric('mailcluster_spool_live_bytes');
    const before = await snapshot();
    const ioBefore = io();
    const logBytes = () => statSync(node.logPath).size + statSync(node.stderrPath).size;
    const logBefore = logBytes();
    log(`(a) backlog: ${count} messages of ${messageBytes / 1024} KB (${(live / MB).toFixed(0)} MB live, ${await node.metric('mailcluster_spool_segments')} segments) accepted in ${acceptS.toFixed(1)} s; idle ${idleS} s = one hour at scale ${scale}`);
    await sleep(idleS * 1000);
    const after = await snapshot();
    const ioAfter = io();
    const logged = logBytes() - logBefore;
    const spoolBytes = Object.keys(after).reduce((n, k) => n + after[k] - before[k], 0);
    log(`(a) idle hour: spool wrote ${spoolBytes} bytes (accept ${after.accept - before.accept}, compaction ${after.compaction - before.compaction}, metadata ${after.metadata - before.metadata}); process write_bytes ${ioAfter - ioBefore}, of which ${logged} are the node's log (a line per delivery attempt)`);
    log(`(a) bytes written ÷ backlog = ${(spoolBytes / live).toFixed(4)} (spool records), ${((ioAfter - ioBefore - logged) / live).toFixed(4)} (/proc io without the log: with page rewrites and the journal)   goal ≤ 0.05`);
  } finally {
    await node.close();
    await dns.stop();
  }
}

/** A simulated day of relay traffic through the Spool (real files, simulated clock). */
async function steadyDay(): Promise<void> {
  const msgBytes = positiveInt(flags, 'day-msg-kb', 4) * 1024;
  const dir = makeTempDir('bench-spool-day');
  let now = 0;
  const spool = await Spool.open(dir, { segmentBytes: 8 * MB, compactIntervalMs: 1e9, updateDelayMs: 0, now: () => now });
  try {
    const perStep = 60; // one message per simulated second
    const stepMs = 60_000;
    const steps = 24 * 60;
    let seq = 0;
    let rng = 42;
    const random = () => { rng = (rng * 1103515245 + 12345) & 0x7fffffff; return rng / 0x7fffffff; };
    const deferred = new Map<string, { deliverAt: number; nextTry: number; tries: number }>();
    let toDeliver: string[] = [];
    const content = Buffer.alloc(msgBytes, 0x61);
    const t0 = Date.now();
    for (let step = 0; step < steps; step++) {
      now = step * stepMs;
      const ops: Array<Promise<unknown>> = [];
      for (const id of toDeliver) ops.push(spool.remove(id));
      toDeliver = [];
      for (const [id, d] of deferred) {
        if (d.deliverAt <= now) { deferred.delete(id); ops.push(spool.remove(id)); continue; }
        if (d.nextTry <= now) {
          d.tries++;
          d.nextTry = now + Math.min(3600_000, 300_000 * 2 ** (d.tries - 1));
          const m = spool.messages.get(id);
          if (m) { m.meta.attempts = d.tries; m.meta.nextAttempt = d.nextTry; m.meta.rcpts[0] = { ...m.meta.rcpts[0], status: 'deferred', error: '421 4.4.2 customer offline' }; }
          ops.push(spool.update(id));
        }
      }
      for (let i = 0; i < perStep; i++) {
        const id = `D${seq++}`;
        ops.push(spool.add(meta(id, msgBytes, now), content));
        if (random() < 0.1) deferred.set(id, { deliverAt: now + 3600_000 * (1 + 23 * random()), nextTry: now, tries: 0 });
        else toDeliver.push(id);
      }
      await Promise.all(ops);
      await spool.maintain();
    }
    const total = written(spool);
    const accepted = spool.stats.bytesWritten.accept;
    log(`(b) simulated day: ${seq} messages of ${msgBytes / 1024} KB, 10% held 1-24 h (${deferred.size} still held), ${((Date.now() - t0) / 1000).toFixed(0)} s real time`);
    log(`(b) written: accept ${accepted}, compaction ${spool.stats.bytesWritten.compaction}, metadata ${spool.stats.bytesWritten.metadata}; ${spool.stats.compactions} compactions; ${spool.segmentCount} segments, ${(spool.liveBytes / MB).toFixed(1)} MB live at the end`);
    log(`(b) bytes written ÷ bytes accepted = ${(total / accepted).toFixed(3)}   goal ≤ 1.3`);
  } finally {
    await spool.close();
    removeTempDir(dir);
  }
}

async function acceptRate(fsync: boolean, count: number, size: number, writers: number): Promise<number> {
  const dir = makeTempDir('bench-spool-rate');
  const spool = await Spool.open(dir, { fsync });
  try {
    const content = Buffer.alloc(size, 0x62);
    let next = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: writers }, async () => {
      for (let k = next++; k < count; k = next++) await spool.add(meta(`R${k}`, size, Date.now()), content);
    }));
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return count / s;
  } finally {
    await spool.close();
    removeTempDir(dir);
  }
}

/** Acceptance over SMTP (smtp-source, 20 sessions, one connection per message) into a real node, with and without fdatasync. */
async function nodeAcceptRate(fsync: boolean, count: number, size: number): Promise<number> {
  const dns = await startDns({ address: A(53), mx: [{ domain: 'held.bench.test', host: 'mx.held.bench.test', preference: 10 }], a: [{ name: 'mx.held.bench.test', ip: A(21) }] });
  const node = await startMailNode({
    hostname: 'spool.bench.test', address: A(2), relayDomains: ['held.bench.test'], dnsServer: dns.server, deliveryPort: 2525,
    selfAddresses: [A(2)], retryInterval: 3600, maxRetryInterval: 3600, maxConnections: 500,
  }, { env: fsync ? {} : { MAILCLUSTER_SPOOL_FSYNC: '0' } });
  try {
    const r = await smtpSource({ server: node.smtp, sessions: 20, count, size, from: 'bench@client.test', to: 'u@held.bench.test', helo: 'client.bench.test' });
    if (r.completed !== count) throw new Error(`smtp-source: ${r.completed}/${count}: ${r.stderr}`);
    return (count * 1000) / r.elapsedMs;
  } finally {
    await node.close();
    await dns.stop();
  }
}

async function durability(): Promise<void> {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1];
  const sizes = (flags.get('c-sizes') ?? '1024,102400').split(',').map(Number);
  for (const size of sizes) {
    const count = size > 10_000 ? 3000 : 10000;
    const rates = { durable: [] as number[], free: [] as number[] };
    for (let run = 0; run < 3; run++) {
      rates.free.push(await nodeAcceptRate(false, count, size));
      rates.durable.push(await nodeAcceptRate(true, count, size));
    }
    log(`(c) node over SMTP, ${size / 1024} KB, 20 sessions, ${count} messages, medians of 3: durable ${med(rates.durable).toFixed(0)} msg/s, fsync-free ${med(rates.free).toFixed(0)} msg/s, ratio ${(med(rates.durable) / med(rates.free)).toFixed(2)}   goal ≥ 0.7`);
  }
  for (const size of sizes) {
    const count = size > 10_000 ? 5000 : 20000;
    const rates = { durable: [] as number[], free: [] as number[] };
    for (let run = 0; run < 3; run++) {
      rates.free.push(await acceptRate(false, count, size, 64));
      rates.durable.push(await acceptRate(true, count, size, 64));
    }
    log(`(c) Spool alone (no SMTP), ${size / 1024} KB, 64 writers, medians of 3: durable ${med(rates.durable).toFixed(0)} msg/s, fsync-free ${med(rates.free).toFixed(0)} msg/s, ratio ${(med(rates.durable) / med(rates.free)).toFixed(2)}`);
  }
}

if (!only || only === 'c') await durability();
if (!only || only === 'b') await steadyDay();
if (!only || only === 'a') await backlog();
