// Memory benchmark: N concurrent SMTP sessions each send one large message to a real node
// (destination down: the mail stays queued and is retried); prints the node's peak RSS
// (VmHWM). DATA is streamed into blob files past MAILCLUSTER_BLOB_THRESHOLD_BYTES, and
// delivery streams blob files (it reads nothing while the destination is down), so memory
// per session is bounded; `--threshold 1e9` shows the old whole-message-in-memory receive.
//
// One run measures every delivery-concurrency setting (`default` = no PARAM, the node's own
// default) for every variant, interleaved, `--runs` times, and prints the median peak RSS
// of each (peak RSS is per process: every measurement starts a fresh node). Variants:
// `current` (this checkout, started as production starts it: `node bin/mailcluster.js
// node`, which re-executes itself with the node's runtime settings, process-env.ts),
// `--baseline DIR` (another checkout, e.g. `git archive` of main with node_modules linked),
// and `--variants` to weigh an environment: "name:KEY=VALUE&KEY=VALUE;name2:..." (e.g.
// "untuned:MAILCLUSTER_NODE_TUNING=off" starts this checkout without those settings).
//
//   node test/bench/spool/memory.ts [--sessions 200] [--size 10485760] [--runs 3]
//     [--concurrency default,1,4,20] [--threshold N] [--baseline DIR] [--variants SPEC]
//
// Addresses: 127.50.111.0/24 (node .2, dnsmasq .53, clients .100-.139).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { metricValue, startMailNode } from '../../support/mail-node.ts';
import { takeLock } from '../../support/processes.ts';
import { median, parseFlags, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), {
  sessions: 'value', size: 'value', threshold: 'value', runs: 'value', concurrency: 'value', baseline: 'value', variants: 'value',
  // the old single-setting form: same as --concurrency N
  'delivery-concurrency': 'value',
  // also sample the node's heap and external memory (prom-client default metrics) at its RSS peak
  breakdown: 'flag',
});
const breakdown = flags.has('breakdown');
const sessions = positiveInt(flags, 'sessions', 200);
const size = positiveInt(flags, 'size', 10 * 1024 * 1024);
const runs = positiveInt(flags, 'runs', 3);
const threshold = flags.get('threshold');
const settings = (flags.get('concurrency') ?? flags.get('delivery-concurrency') ?? 'default,1,4').split(',').map((s) => s.trim()).filter(Boolean);
for (const s of settings) if (s !== 'default' && !(Number.isInteger(Number(s)) && Number(s) > 0)) throw new Error(`--concurrency: "${s}" is neither "default" nor a positive integer`);

interface Variant { name: string; root?: string; env: Record<string, string> }
const variants: Variant[] = [{ name: 'current', env: {} }];
if (flags.get('baseline')) variants.unshift({ name: 'baseline', root: flags.get('baseline'), env: {} });
for (const spec of (flags.get('variants') ?? '').split(';').filter(Boolean)) {
  const colon = spec.indexOf(':');
  if (colon <= 0) throw new Error(`--variants: "${spec}" is not name:KEY=VALUE[&KEY=VALUE]`);
  const env: Record<string, string> = {};
  for (const kv of spec.slice(colon + 1).split('&').filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--variants: "${kv}" is not KEY=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  variants.push({ name: spec.slice(0, colon), env });
}

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

interface Measurement { idleMb: number; peakMb: number; afterMb: number; ok: number; seconds: number; cpuSeconds: number; failure?: string; atPeak?: string }

/** CPU seconds (user + system, every thread) the process used so far: less swayed by a shared machine than wall time. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15) in clock ticks
}

const MEMORY_METRICS = ['nodejs_heap_size_total_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes'];

async function measure(dnsServer: string, variant: Variant, setting: string): Promise<Measurement> {
  // the held queue has no peer to go to: stop within a second instead of draining 50 s
  const env: Record<string, string> = { MAILCLUSTER_TERM_GRACE_MS: '1000', ...variant.env };
  if (threshold !== undefined) env.MAILCLUSTER_BLOB_THRESHOLD_BYTES = threshold;
  const node = await startMailNode({
    hostname: 'memory.bench.test', address: A(2), relayDomains: ['held.bench.test'], dnsServer, deliveryPort: 2525,
    selfAddresses: [A(2)], maxsize: size + 1024 * 1024, maxConnections: sessions + 50, retryInterval: 600, maxRetryInterval: 600,
    ...(setting === 'default' ? {} : { deliveryConcurrency: Number(setting) }),
  }, { env, ...(variant.root ? { root: variant.root } : {}) });
  try {
    const pid = node.pid()!;
    const before = status(pid);
    const cpu0 = cpuSeconds(pid);
    let peakRss = before.rssKb;
    const poll = setInterval(() => { try { peakRss = Math.max(peakRss, status(pid).rssKb); } catch { /* gone */ } }, 50);
    // --breakdown: the heap figures of the sample with the highest RSS
    let atPeak: { rssKb: number; text: string } = { rssKb: 0, text: '' };
    let sampling = breakdown;
    const sample = async () => {
      while (sampling) {
        const text = await node.metrics().catch(() => '');
        const rssKb = status(pid).rssKb;
        if (text && rssKb > atPeak.rssKb) {
          const mb = (name: string) => (metricValue(text, name) / 1048576).toFixed(0);
          atPeak = { rssKb, text: `at RSS ${(rssKb / 1024).toFixed(0)} MB: ${MEMORY_METRICS.map((n) => `${n.replace(/^nodejs_|_bytes$/g, '')}=${mb(n)}`).join(' ')} MB` };
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    };
    const sampler = sample();
    const t0 = Date.now();
    const [host, port] = [A(2), node.config.smtpPort];
    const replies = await Promise.allSettled(Array.from({ length: sessions }, (_, i) => session(host, port, A(100 + (i % 40)), i, size)));
    const ms = Date.now() - t0;
    // the first delivery attempts (a refused connection each) run on after the last 250
    await new Promise((r) => setTimeout(r, 2000));
    clearInterval(poll);
    sampling = false;
    await sampler;
    const after = status(pid);
    const cpu = cpuSeconds(pid) - cpu0;
    const ok = replies.filter((r) => r.status === 'fulfilled' && r.value.startsWith('250')).length;
    const failed = replies.find((r) => r.status === 'rejected' || !r.value.startsWith('250'));
    const failure = failed ? (failed.status === 'rejected' ? String(failed.reason) : failed.value) : undefined;
    return { idleMb: before.rssKb / 1024, peakMb: Math.max(peakRss, after.hwmKb) / 1024, afterMb: after.rssKb / 1024, ok, seconds: ms / 1000, cpuSeconds: cpu, ...(failure ? { failure } : {}), ...(breakdown ? { atPeak: atPeak.text } : {}) };
  } finally {
    await node.close();
  }
}

async function main(): Promise<void> {
  const dns = await startDns({ address: A(53), mx: [{ domain: 'held.bench.test', host: 'mx.held.bench.test', preference: 10 }], a: [{ name: 'mx.held.bench.test', ip: A(21) }] });
  const results = new Map<string, Measurement[]>();
  const key = (v: Variant, s: string) => `${v.name}|${s}`;
  try {
    console.log(`sessions=${sessions} size=${size} threshold=${threshold ?? 'default (256 KiB)'} runs=${runs} concurrency=${settings.join(',')} variants=${variants.map((v) => v.name).join(',')}`);
    for (let run = 1; run <= runs; run++) {
      for (const setting of settings) {
        for (const v of variants) {
          const m = await measure(dns.server, v, setting);
          results.set(key(v, setting), [...(results.get(key(v, setting)) ?? []), m]);
          console.log(`run ${run} ${v.name} concurrency=${setting}: accepted ${m.ok}/${sessions} in ${m.seconds.toFixed(1)} s (node CPU ${m.cpuSeconds.toFixed(1)} s), RSS idle ${m.idleMb.toFixed(0)} MB, peak ${m.peakMb.toFixed(0)} MB, after ${m.afterMb.toFixed(0)} MB${m.failure ? `; first failure: ${m.failure}` : ''}${m.atPeak ? `\n  ${m.atPeak}` : ''}`);
        }
      }
    }
  } finally {
    await dns.stop();
  }
  const rows: Array<Array<string | number>> = [];
  for (const setting of settings) {
    const ref = median((results.get(key(variants[0], setting)) ?? []).map((m) => m.peakMb));
    for (const v of variants) {
      const ms = results.get(key(v, setting)) ?? [];
      const peaks = ms.map((m) => m.peakMb);
      const med = median(peaks);
      rows.push([setting, v.name, Math.round(med), Math.round(Math.min(...peaks)), Math.round(Math.max(...peaks)), (med / ref).toFixed(2), Math.round(median(ms.map((m) => m.idleMb))), median(ms.map((m) => m.cpuSeconds)), `${Math.min(...ms.map((m) => m.ok))}/${sessions}`]);
    }
  }
  console.log(`\nnode peak RSS (VmHWM), median of ${runs} runs per row, MB; ratio against ${variants[0].name} of the same concurrency`);
  console.log(table(['concurrency', 'variant', 'median', 'min', 'max', 'ratio', 'idle', 'cpu s', 'accepted'], rows));
}

await main();
