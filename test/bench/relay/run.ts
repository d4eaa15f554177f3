// Relay benchmark: the mail node and a private Postfix instance side by side, both
// relaying to the same smtp-sink with durable queues, under the same smtp-source
// load. Prints messages/s accepted (smtp-source's elapsed time) and delivered (until
// smtp-sink has counted every message), medians over several runs, and node/postfix.
//
//   npm run bench:relay                      # full: 1 KB and 100 KB, 20 sessions, 20,000 messages, 3 runs
//   npm run bench:relay -- --quick           # smoke run: 2,000 messages, 1 run
//   npm run bench:relay -- --only postfix    # one side only (node | postfix)
//   options: --count N --runs N --sessions N --sizes 1024,102400 --reuse (one connection per session)
//            --node-root DIR (run the node from another checkout, e.g. a `git archive HEAD` snapshot)
//
// Both relays run in a session of their own: Postfix's master daemonizes (setsid), and the
// node is started with setsid too. With the kernel's autogroup scheduling (on here) each
// session is one group for CPU shares, so on a busy machine neither relay shares its
// group with smtp-source and smtp-sink while the other does not (the node used to: it was
// started in the benchmark's own session).
//
// Addresses: 127.50.1.0/24 (sink .100, Postfix .1, node .2, dnsmasq .53).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { metricValue, startMailNode, type MailNode } from '../../support/mail-node.ts';
import { startPostfix, type PostfixInstance } from '../../support/postfix.ts';
import { startSmtpSink, type SmtpSink } from '../../support/smtp-sink.ts';
import { smtpSource } from '../../support/smtp-source.ts';
import { waitUntil, takeLock } from '../../support/processes.ts';
import { median, parseFlags, positiveInt, rate, table } from '../stats.ts';

/** 'direct' is smtp-source straight into smtp-sink: the ceiling of the load generator here. */
type Target = 'postfix' | 'node' | 'direct';

interface Sample { target: Target; size: number; run: number; acceptedMs: number; deliveredMs: number; count: number }

const flags = parseFlags(process.argv.slice(2), {
  quick: 'flag', count: 'value', runs: 'value', sessions: 'value', sizes: 'value', only: 'value', reuse: 'flag', 'node-root': 'value',
});
const quick = flags.has('quick');
const count = positiveInt(flags, 'count', quick ? 2000 : 20000);
const runs = positiveInt(flags, 'runs', quick ? 1 : 3);
const sessions = positiveInt(flags, 'sessions', 20);
const sizes = (flags.get('sizes') ?? '1024,102400').split(',').map(Number);
if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error('--sizes takes positive byte counts, e.g. 1024,102400');
const only = flags.get('only');
if (only !== undefined && only !== 'node' && only !== 'postfix') throw new Error('--only takes node or postfix');
const targets: Target[] = only ? [only] : ['postfix', 'node'];
const reuse = flags.has('reuse');

const destinationDomain = 'dest.bench.test';
const addresses = {
  sink: harnessAddress(1, 100),
  postfix: harnessAddress(1, 1),
  node: harnessAddress(1, 2),
  dns: harnessAddress(1, 53),
};
const smtpPort = 2525;

// Ctrl-C and kill still tear everything down (the harness cleans up at exit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
// Fixed addresses: one run at a time on this machine.
takeLock('bench-relay');

function log(line: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
}

/** CPU seconds (user + system, all threads) a process has used so far; NaN when unknown. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** What the node's spool and CPU did over one run: the note printed after its rates. */
interface NodeProbe { cpu: number; commits: number; commitSeconds: number; records: number }

async function probeNode(node: MailNode): Promise<NodeProbe> {
  const text = await node.metrics();
  return {
    cpu: cpuSeconds(node.pid()),
    commits: metricValue(text, 'mailcluster_spool_commit_seconds_count'),
    commitSeconds: metricValue(text, 'mailcluster_spool_commit_seconds_sum'),
    records: metricValue(text, 'mailcluster_spool_commit_records_sum'),
  };
}

function nodeNote(before: NodeProbe, after: NodeProbe, count: number): string {
  const commits = after.commits - before.commits;
  const records = after.records - before.records;
  return `node: ${((after.cpu - before.cpu) * 1000 / count).toFixed(2)} ms CPU per message; ${commits} group commits, ` +
    `${(records / Math.max(1, commits)).toFixed(1)} records and ${((after.commitSeconds - before.commitSeconds) * 1000 / Math.max(1, commits)).toFixed(1)} ms each`;
}

async function measure(target: Target, server: string, size: number, run: number, sink: SmtpSink, drained: () => Promise<void>, node?: MailNode): Promise<Sample> {
  const probe = node ? await probeNode(node) : undefined;
  const base = sink.count();
  const started = performance.now();
  const result = await smtpSource({
    server, sessions, count, size, reuseConnections: reuse, timeoutMs: 30 * 60000,
    from: 'sender@src.bench.test', to: `rcpt@${destinationDomain}`, helo: 'client.bench.test',
  });
  const acceptedMs = result.elapsedMs;
  if (result.exitCode !== 0 || result.completed !== count) {
    throw new Error(`${target}: smtp-source exited ${result.exitCode} after ${result.completed}/${count} messages: ${result.stderr.trim()}`);
  }
  // Bound: generous, but finite (delivery at 20 messages/s would still finish).
  await sink.waitForCount(base + count, Math.max(120000, count * 50));
  const deliveredMs = performance.now() - started;
  await drained();
  const sample = { target, size, run, acceptedMs, deliveredMs, count };
  log(`${target.padEnd(7)} ${String(size).padStart(6)} B run ${run}: accepted ${rate(count, acceptedMs).toFixed(0)}/s ` +
    `(${(acceptedMs / 1000).toFixed(1)} s), delivered ${rate(count, deliveredMs).toFixed(0)}/s (${(deliveredMs / 1000).toFixed(1)} s); ` +
    `load average ${loadavg()[0].toFixed(1)} (the machine is shared)`);
  if (node && probe) log(`        ${nodeNote(probe, await probeNode(node), count)}`);
  return sample;
}

async function main(): Promise<void> {
  log(`relay benchmark: ${targets.join(' vs ')}, sizes ${sizes.join(', ')} B, ${count} messages, ${sessions} sessions, ${runs} run(s)` +
    `${reuse ? ', one connection per session' : ', one connection per message'}`);
  const sink = await startSmtpSink({ address: addresses.sink, port: 2525, maxConnections: 512, backlog: 1024 });
  const stops: Array<() => Promise<void>> = [sink.stop];
  let postfix: PostfixInstance | undefined;
  let node: MailNode | undefined;
  try {
    if (targets.includes('postfix')) {
      postfix = await startPostfix({ address: addresses.postfix, port: smtpPort, relayTo: `${sink.address}:${sink.port}`, mynetworks: ['127.0.0.0/8'], destinationConcurrency: 20 });
      stops.unshift(postfix.stop);
      log(`postfix instance ${postfix.dir} on ${addresses.postfix}:${smtpPort} -> smtp-sink ${sink.address}:${sink.port}`);
    }
    if (targets.includes('node')) {
      const dns = await startDns({ address: addresses.dns, mx: [{ domain: destinationDomain, host: 'sink.bench.test', preference: 10 }], a: [{ name: 'sink.bench.test', ip: sink.address }] });
      stops.unshift(dns.stop);
      node = await startMailNode({
        hostname: 'node.bench.test',
        address: addresses.node,
        smtpPort,
        relayNetworks: ['127.0.0.0/8'],
        dnsServer: dns.server,
        deliveryPort: sink.port,
        deliveryConcurrency: 20,
        maxConnections: 1000,
        maxsize: 10 * 1024 * 1024,
        selfAddresses: [addresses.node, 'node.bench.test'],
      }, { readyTimeoutMs: 30000, root: flags.get('node-root'), ownSession: true });
      stops.unshift(node.close);
      log(`mail node ${node.dir} on ${node.smtp} -> smtp-sink via MX ${destinationDomain} (dnsmasq ${dns.server})`);
    }

    const samples: Sample[] = [];
    for (const size of sizes) {
      samples.push(await measure('direct', `${sink.address}:${sink.port}`, size, 1, sink, async () => undefined));
      for (let run = 1; run <= runs; run++) {
        // Alternate who goes first, so that neither always runs on a warmer (or busier) machine.
        const order = run % 2 === 1 ? targets : [...targets].reverse();
        for (const target of order) {
          if (target === 'postfix' && postfix) {
            const pf = postfix;
            samples.push(await measure('postfix', `${addresses.postfix}:${smtpPort}`, size, run, sink, () => pf.waitForEmptyQueue(120000)));
          } else if (target === 'node' && node) {
            const n = node;
            samples.push(await measure('node', n.smtp, size, run, sink,
              () => waitUntil('the node queue to empty', async () => (await n.queue()).total === 0, { timeoutMs: 120000, intervalMs: 100 }), n));
          }
        }
      }
    }
    console.log('\n' + report(samples));
  } finally {
    for (const stop of stops) await stop().catch((err: unknown) => console.error('stop failed:', err));
  }
}

/** The summary: per size and target, median rates; then node/postfix ratios (pure). */
function report(samples: Sample[]): string {
  const rows: Array<Array<string | number>> = [];
  const ratios: Array<Array<string | number>> = [];
  for (const size of sizes) {
    const med = (target: Target, key: 'acceptedMs' | 'deliveredMs') =>
      median(samples.filter((s) => s.target === target && s.size === size).map((s) => rate(s.count, s[key])));
    for (const target of ['direct' as const, ...targets]) {
      const all = samples.filter((s) => s.target === target && s.size === size);
      rows.push([`${target} ${size} B`, all.length, med(target, 'acceptedMs'), med(target, 'deliveredMs'),
        all.map((s) => rate(s.count, s.deliveredMs).toFixed(0)).join(' ')]);
    }
    if (targets.length === 2) {
      ratios.push([`${size} B`, med('node', 'acceptedMs') / med('postfix', 'acceptedMs'), med('node', 'deliveredMs') / med('postfix', 'deliveredMs')]);
    }
  }
  let text = `medians over ${runs} run(s) of ${count} messages, ${sessions} sessions (messages/s); ` +
    `"direct" is smtp-source into smtp-sink without a relay (one run): the load generator's ceiling\n` +
    table(['target size', 'runs', 'accepted/s', 'delivered/s', 'delivered/s per run'], rows);
  if (ratios.length) text += '\n\nnode / postfix\n' + table(['size', 'accepted', 'delivered'], ratios);
  return text;
}

await main();
