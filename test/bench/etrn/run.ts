// ETRN benchmark: time from one `ETRN <domain>` at Addr[0] (haproxy, PROXY v2 to the
// nodes) until every node of the cluster has started its flush of that domain, for
// clusters of 3 and 40 nodes, medians over repeated runs.
//
//   npm run bench:etrn                   # 3 nodes and 40 nodes, 10 runs each
//   npm run bench:etrn -- --quick        # 3 nodes, 3 runs
//   options: --nodes 3,40 --runs N --messages N (queued per node before the runs)
//            --node-root DIR (run the nodes from another checkout, e.g. a `git archive HEAD` snapshot)
//
// The signal: each node's queue logs one pino line `{"event":"flush","domain":…,"time":<ms>}`
// when it starts a flush (node-image/src/delivery/queue.ts); all nodes share this
// machine's clock, so "every node started" is the latest such `time` minus the moment the
// client sent ETRN. Each run uses its own client address, so the per-client ETRN rate
// limit never answers for the cluster.
//
// Addresses: nodes 127.50.2.1-127.50.2.N (smtp 2525, MAILQv2 1174, admin 8025 as in a
// pod), Addr[0] 127.50.3.1:2500, dnsmasq 127.50.3.53, clients 127.50.3.100+.
import { connect, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { startHaproxy } from '../../support/haproxy.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { smtpSource } from '../../support/smtp-source.ts';
import { sleep, waitUntil, takeLock } from '../../support/processes.ts';
import { median, parseFlags, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { quick: 'flag', nodes: 'value', runs: 'value', messages: 'value', 'node-root': 'value' });
const quick = flags.has('quick');
const clusterSizes = (flags.get('nodes') ?? (quick ? '3' : '3,40')).split(',').map(Number);
if (clusterSizes.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) throw new Error('--nodes takes cluster sizes from 1 to 200, e.g. 3,40');
const runsFor = () => positiveInt(flags, 'runs', quick ? 3 : 10);
const messagesPerNode = positiveInt(flags, 'messages', 5);

const domain = 'customer.bench.test';
const addr0 = harnessAddress(3, 1);
const addr0Port = 2500;
const password = 'bench-secret';
const nodeAddress = (i: number) => addressOf(2, i + 1);
/** 127.50.<subnet>.<host>, hosts past 254 spill into the next subnet. */
function addressOf(subnet: number, host: number): string {
  return harnessAddress(subnet + Math.floor((host - 1) / 254), ((host - 1) % 254) + 1);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
// Fixed addresses: one run at a time on this machine.
takeLock('bench-etrn');

function log(line: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
}

interface RunResult { nodes: number; run: number; replyMs: number; allStartedMs: number; firstStartedMs: number; reply: string }

function isFlushLine(line: Record<string, unknown>): boolean {
  return line.event === 'flush' && line.domain === domain;
}

/** One SMTP session: banner, EHLO, then ETRN; resolves with the send time and the full reply. */
async function etrnOnce(clientAddress: string): Promise<{ sentAt: number; repliedAt: number; reply: string }> {
  const socket: Socket = connect({ host: addr0, port: addr0Port, localAddress: clientAddress });
  socket.setNoDelay(true);
  let buffer = '';
  const waiters: Array<() => void> = [];
  socket.on('data', (c: Buffer) => { buffer += c.toString('latin1'); for (const w of waiters.splice(0)) w(); });
  const closed = new Promise<never>((_, reject) => {
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`connection closed; got ${JSON.stringify(buffer)}`)));
  });
  closed.catch(() => undefined);
  /** Waits for a complete reply (last line `NNN text`) and consumes it. */
  const readReply = async (): Promise<string> => {
    const deadline = Date.now() + 30000;
    for (;;) {
      const m = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
      if (m) {
        const end = m.index + m[0].length;
        const reply = buffer.slice(0, end);
        buffer = buffer.slice(end);
        return reply;
      }
      if (Date.now() > deadline) throw new Error(`no complete SMTP reply within 30 s: ${JSON.stringify(buffer)}`);
      await Promise.race([new Promise<void>((r) => { waiters.push(r); setTimeout(r, 1000); }), closed]);
    }
  };
  try {
    await readReply();
    socket.write('EHLO client.bench.test\r\n');
    await readReply();
    const sentAt = Date.now();
    socket.write(`ETRN ${domain}\r\n`);
    const reply = await readReply();
    const repliedAt = Date.now();
    socket.end('QUIT\r\n');
    return { sentAt, repliedAt, reply };
  } finally {
    socket.destroySoon();
  }
}

async function benchCluster(n: number, runs: number): Promise<RunResult[]> {
  const stops: Array<() => Promise<void>> = [];
  try {
    const dns = await startDns({
      address: harnessAddress(3, 53),
      mx: [
        // The customer's own server (down throughout), then the cluster as backup MX.
        { domain, host: 'mx.customer.bench.test', preference: 10 },
        { domain, host: 'smtp.bench.test', preference: 20 },
      ],
      a: [{ name: 'mx.customer.bench.test', ip: harnessAddress(3, 10) }, { name: 'smtp.bench.test', ip: addr0 }],
    });
    stops.unshift(dns.stop);
    const addresses = Array.from({ length: n }, (_, i) => nodeAddress(i));
    const nodes: MailNode[] = [];
    log(`starting ${n} nodes`);
    const startedAt = Date.now();
    // A few at a time: the machine has 2 cores.
    for (let i = 0; i < n; i += 8) {
      const batch = await Promise.all(addresses.slice(i, i + 8).map((address, k) => startMailNode({
        hostname: `node-${i + k}.bench.test`,
        address,
        smtpPort: 2525,
        mailqPort: 1174,
        adminPort: 8025,
        relayDomains: [domain],
        proxyProtocol: [`${addr0}/32`],
        dnsServer: dns.server,
        deliveryPort: 2599,
        retryInterval: 3600,
        maxRetryInterval: 3600,
        etrnCluster: addresses.map((a) => ({ node: a, port: 1174, user: 'etrn', password })),
        schedulerAuth: [{ user: 'etrn', password, attrs: 'ETRN', acl: '[127.0.0.0]/8' }],
        selfAddresses: [addr0, 'smtp.bench.test', ...addresses],
      }, { readyTimeoutMs: 60000, root: flags.get('node-root') })));
      for (const node of batch) { nodes.push(node); stops.unshift(node.close); }
    }
    log(`${n} nodes ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    const lb = await startHaproxy({ address: addr0, port: addr0Port, backends: nodes.map((node) => ({ address: node.config.address, port: node.config.smtpPort })), proxyV2: true, sourceAddress: addr0 });
    stops.unshift(lb.stop);

    // Mail for the customer waits, deferred, on every node.
    await Promise.all(nodes.map(async (node) => {
      const sent = await smtpSource({ server: node.smtp, count: messagesPerNode, sessions: 1, from: 'sender@src.bench.test', to: `user@${domain}`, timeoutMs: 60000 });
      if (sent.exitCode !== 0) throw new Error(`queueing on ${node.smtp} failed: ${sent.stderr}`);
    }));
    // …after a first attempt failed (the customer's server is down), so none is in delivery.
    await waitUntil('every node to hold its messages deferred', async () => {
      const reports = await Promise.all(nodes.map((node) => node.queue()));
      return reports.every((q) => Number(q.deferred ?? 0) >= messagesPerNode);
    }, { timeoutMs: 60000, intervalMs: 200 });

    const results: RunResult[] = [];
    for (let run = 1; run <= runs; run++) {
      const before = nodes.map((node) => node.logs().filter(isFlushLine).length);
      const client = addressOf(3, 100 + (results.length + n * 7) % 150);
      const { sentAt, repliedAt, reply } = await etrnOnce(client);
      if (!/^250[ -]/.test(reply)) throw new Error(`ETRN at Addr[0] was answered ${JSON.stringify(reply)}`);
      const starts: number[] = [];
      let flushed = 0;
      await waitUntil(`all ${n} nodes to log their flush`, () => {
        starts.length = 0;
        flushed = 0;
        for (let i = 0; i < nodes.length; i++) {
          // The first flush since this ETRN: a node also re-flushes when an attempt that was
          // running at an earlier ETRN ends, and that line may come just before this one.
          const flush = nodes[i].logs().filter(isFlushLine).slice(before[i]).find((l) => Number(l.time) >= sentAt);
          if (!flush) return false;
          starts.push(Number(flush.time));
          flushed += Number(flush.messages ?? 0);
        }
        return true;
      }, { timeoutMs: 30000, intervalMs: 25 });
      const result = {
        nodes: n, run, reply: reply.trim().split('\r\n').pop() ?? '',
        replyMs: repliedAt - sentAt,
        allStartedMs: Math.max(...starts) - sentAt,
        firstStartedMs: Math.min(...starts) - sentAt,
      };
      results.push(result);
      log(`${n} nodes run ${run}: every flush started ${result.allStartedMs} ms after ETRN (first ${result.firstStartedMs} ms), reply after ${result.replyMs} ms ` +
        `(${flushed} messages flushed; "${result.reply}"; load average ${loadavg()[0].toFixed(1)})`);
      // Let the flushed deliveries fail back to deferred (and any re-flush happen) before the next ETRN.
      await sleep(1000);
    }
    return results;
  } finally {
    for (const stop of stops) await stop().catch((err: unknown) => console.error('stop failed:', err));
  }
}

async function main(): Promise<void> {
  log(`ETRN benchmark: clusters of ${clusterSizes.join(', ')} nodes, ${messagesPerNode} deferred messages per node`);
  const all: RunResult[] = [];
  for (const n of clusterSizes) all.push(...(await benchCluster(n, runsFor())));
  const rows = clusterSizes.map((n) => {
    const r = all.filter((x) => x.nodes === n);
    const every = r.map((x) => x.allStartedMs);
    return [`${n} nodes`, r.length, median(every), Math.min(...every), Math.max(...every), median(r.map((x) => x.firstStartedMs)), median(r.map((x) => x.replyMs))];
  });
  console.log('\nms from ETRN at Addr[0]\n' + table(['cluster', 'runs', 'all started (median)', 'min', 'max', 'first started', 'ETRN reply'], rows));
}

await main();
