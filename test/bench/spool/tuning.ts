// What the node's process settings (node-image/src/process-env.ts: semi-space 4 MB,
// MALLOC_ARENA_MAX=2) cost on the ordinary relay path: smtp-source sends small messages
// through a real node to smtp-sink, with and without the settings
// (MAILCLUSTER_NODE_TUNING=off), interleaved; prints messages/s delivered, the node's CPU
// seconds and its peak RSS, medians over the runs. The memory side is memory.ts.
//
//   node test/bench/spool/tuning.ts [--runs 3] [--sizes 1024,102400] [--count 4000] [--sessions 20]
//
// Addresses: 127.50.113.0/24 (node .102, smtp-sink .120, dnsmasq .153).
import { readFileSync } from 'node:fs';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { startMailNode } from '../../support/mail-node.ts';
import { takeLock } from '../../support/processes.ts';
import { startSmtpSink } from '../../support/smtp-sink.ts';
import { smtpSource } from '../../support/smtp-source.ts';
import { median, parseFlags, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { runs: 'value', sizes: 'value', count: 'value', sessions: 'value' });
const runs = positiveInt(flags, 'runs', 3);
const count = positiveInt(flags, 'count', 4000);
const sessions = positiveInt(flags, 'sessions', 20);
const sizes = (flags.get('sizes') ?? '1024,102400').split(',').map(Number);
if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error('--sizes takes positive byte counts');
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
takeLock('bench-spool-tuning');

const A = (h: number) => harnessAddress(113, h);
const variants: Array<{ name: string; env: Record<string, string> }> = [
  { name: 'settings', env: {} },
  { name: 'off', env: { MAILCLUSTER_NODE_TUNING: 'off' } },
];

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Sample { rate: number; cpu: number; hwmMb: number }

async function main(): Promise<void> {
  const dns = await startDns({ address: A(153), mx: [{ domain: 'sink.bench.test', host: 'mx.sink.bench.test', preference: 10 }], a: [{ name: 'mx.sink.bench.test', ip: A(120) }] });
  const sink = await startSmtpSink({ address: A(120) });
  const results = new Map<string, Sample[]>();
  try {
    console.log(`count=${count} sessions=${sessions} sizes=${sizes.join(',')} runs=${runs}`);
    for (let run = 1; run <= runs; run++) {
      for (const size of sizes) {
        for (const v of variants) {
          const node = await startMailNode({
            hostname: 'tuning.bench.test', address: A(102), relayDomains: ['sink.bench.test'], dnsServer: dns.server,
            deliveryPort: sink.port, selfAddresses: [A(102)],
          }, { env: { MAILCLUSTER_TERM_GRACE_MS: '1000', ...v.env } });
          try {
            const pid = node.pid()!;
            const c0 = cpuSeconds(pid);
            const before = sink.count();
            const t0 = Date.now();
            const r = await smtpSource({ server: node.smtp, sessions, count, size, from: 'a@client.test', to: 'u@sink.bench.test' });
            if (r.exitCode !== 0) throw new Error(`smtp-source exited ${r.exitCode}`);
            await sink.waitForCount(before + count, 300000);
            const ms = Date.now() - t0;
            const hwmMb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
            const s: Sample = { rate: (count * 1000) / ms, cpu: cpuSeconds(pid) - c0, hwmMb };
            results.set(`${v.name}|${size}`, [...(results.get(`${v.name}|${size}`) ?? []), s]);
            console.log(`run ${run} ${v.name} size=${size}: delivered ${s.rate.toFixed(0)}/s, node CPU ${s.cpu.toFixed(1)} s, VmHWM ${hwmMb.toFixed(0)} MB`);
          } finally {
            await node.close();
          }
        }
      }
    }
  } finally {
    await sink.stop();
    await dns.stop();
  }
  const rows: Array<Array<string | number>> = [];
  for (const size of sizes) {
    const ref = median((results.get(`off|${size}`) ?? []).map((s) => s.rate));
    for (const v of variants) {
      const ss = results.get(`${v.name}|${size}`) ?? [];
      const rate = median(ss.map((s) => s.rate));
      rows.push([size, v.name, Math.round(rate), (rate / ref).toFixed(2), median(ss.map((s) => s.cpu)), Math.round(median(ss.map((s) => s.hwmMb)))]);
    }
  }
  console.log(`\nmedians of ${runs} runs; ratio: delivered/s against "off" of the same size`);
  console.log(table(['size', 'variant', 'msgs/s', 'ratio', 'cpu s', 'VmHWM MB'], rows));
}

await main();
