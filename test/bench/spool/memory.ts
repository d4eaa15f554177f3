// Memory benchmark: N concurrent SMTP sessions each send one large message to a real node
// (destination down: the mail stays queued); prints the node's peak RSS (VmHWM). DATA is
// streamed into blob files past MAILCLUSTER_BLOB_THRESHOLD_BYTES, so memory per session is
// bounded; `--threshold 1e9` shows the old whole-message-in-memory behaviour.
//
//   node test/bench/spool/memory.ts [--sessions 200] [--size 10485760] [--threshold N] [--delivery-concurrency 4]
//
// Addresses: 127.50.111.0/24 (node .2, dnsmasq .53, clients .100-.139).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { startMailNode } from '../../support/mail-node.ts';
import { takeLock } from '../../support/processes.ts';
import { parseFlags, positiveInt } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { sessions: 'value', size: 'value', threshold: 'value', 'delivery-concurrency': 'value' });
const sessions = positiveInt(flags, 'sessions', 200);
const size = positiveInt(flags, 'size', 10 * 1024 * 1024);
const threshold = flags.get('threshold');
const deliveryConcurrency = positiveInt(flags, 'delivery-concurrency', 4);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
takeLock('bench-spool-memory');

const A = (h: number) => harnessAddress(111, h);

function status(pid: number): { rssKb: number; hwmKb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** One SMTP session sending `bytes` of body with backpressure; resolves with the final reply. */
function session(host: string, port: number, localAddress: string, i: number, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress });
    const line = Buffer.from(`${'m'.repeat(76)}\r\n`);
    const chunk = Buffer.concat(Array.from({ length: 820 }, () => line)); // ~64 KB of 78-byte lines
    let buf = '';
    let step = 0;
    const cmds = ['EHLO bench.test', 'MAIL FROM:<bench@client.test>', `RCPT TO:<u${i}@held.bench.test>`, 'DATA'];
    const sendBody = async () => {
      s.write(`Subject: memory ${i}\r\n\r\n`);
      let sent = 0;
      while (sent < bytes) {
        const c = sent + chunk.length <= bytes ? chunk : chunk.subarray(0, Math.max(2, bytes - sent));
        sent += c.length;
        if (!s.write(c)) await new Promise((r) => s.once('drain', r));
      }
      s.write('\r\n.\r\n');
    };
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const m = /^(\d{3})([ -])[^\r\n]*\r\n/.exec(buf);
        if (!m) break;
        buf = buf.slice(m[0].length);
        if (m[2] === '-') continue;
        const code = Number(m[1]);
        if (step === 0 && code === 220) { s.write(cmds[0] + '\r\n'); step = 1; continue; }
        if (step >= 1 && step <= 3 && code === 250) { s.write(cmds[step] + '\r\n'); step++; continue; }
        if (step === 4 && code === 354) { step = 5; void sendBody(); continue; }
        if (step === 5) { s.end('QUIT\r\n'); resolve(m[0].trim()); return; }
        s.destroy();
        reject(new Error(`session ${i}: unexpected reply ${m[0].trim()} at step ${step}`));
        return;
      }
    });
    s.on('error', reject);
  });
}

async function main(): Promise<void> {
  const dns = await startDns({ address: A(53), mx: [{ domain: 'held.bench.test', host: 'mx.held.bench.test', preference: 10 }], a: [{ name: 'mx.held.bench.test', ip: A(21) }] });
  const env: Record<string, string> = {};
  if (threshold !== undefined) env.MAILCLUSTER_BLOB_THRESHOLD_BYTES = threshold;
  const node = await startMailNode({
    hostname: 'memory.bench.test', address: A(2), relayDomains: ['held.bench.test'], dnsServer: dns.server, deliveryPort: 2525,
    selfAddresses: [A(2)], maxsize: size + 1024 * 1024, maxConnections: sessions + 50, deliveryConcurrency, retryInterval: 600, maxRetryInterval: 600,
  }, { env });
  try {
    const pid = node.pid()!;
    const before = status(pid);
    let peakRss = before.rssKb;
    const poll = setInterval(() => { try { peakRss = Math.max(peakRss, status(pid).rssKb); } catch { /* gone */ } }, 50);
    const t0 = Date.now();
    const [host, port] = [A(2), node.config.smtpPort];
    const replies = await Promise.allSettled(Array.from({ length: sessions }, (_, i) => session(host, port, A(100 + (i % 40)), i, size)));
    const ms = Date.now() - t0;
    clearInterval(poll);
    const after = status(pid);
    const ok = replies.filter((r) => r.status === 'fulfilled' && r.value.startsWith('250')).length;
    const queued = (await node.queue()).total;
    console.log(`sessions=${sessions} size=${size} threshold=${threshold ?? 'default (256 KiB)'} delivery-concurrency=${deliveryConcurrency}`);
    console.log(`accepted ${ok}/${sessions} (queued ${queued}) in ${(ms / 1000).toFixed(1)} s, ${((sessions * size) / ms / 1000).toFixed(1)} MB/s`);
    console.log(`node RSS: idle ${(before.rssKb / 1024).toFixed(0)} MB, peak ${(Math.max(peakRss, after.hwmKb) / 1024).toFixed(0)} MB (VmHWM ${(after.hwmKb / 1024).toFixed(0)} MB), after ${(after.rssKb / 1024).toFixed(0)} MB`);
    const failed = replies.filter((r) => r.status === 'rejected' || !r.value.startsWith('250'));
    if (failed.length) console.log(`first failure: ${failed[0].status === 'rejected' ? (failed[0] as PromiseRejectedResult).reason : (failed[0] as PromiseFulfilledResult<string>).value}`);
  } finally {
    await node.close();
    await dns.stop();
  }
}

await main();
