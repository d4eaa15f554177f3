// Queue-operations benchmark (issue 14): how long the admin API takes to list, summarize,
// hold and release with a large deferred queue on one real node, medians over runs.
//
//   node test/bench/queue-admin/run.ts                 # 5000 queued messages, 5 runs
//   node test/bench/queue-admin/run.ts --messages 20000 --runs 5
//
// Addresses: node 127.50.140.1, dnsmasq 127.50.140.53, the next hop 127.50.140.20 (nothing
// listens there: every message stays deferred).
import { createHash } from 'node:crypto';
import { harnessAddress } from '../../support/addresses.ts';
import { startDns } from '../../support/dnsmasq.ts';
import { startMailNode } from '../../support/mail-node.ts';
import { smtpSource } from '../../support/smtp-source.ts';
import { waitUntil } from '../../support/processes.ts';
import { median, parseFlags, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { messages: 'value', runs: 'value' });
const messages = positiveInt(flags, 'messages', 5000);
const runs = positiveInt(flags, 'runs', 5);
const token = 'bench-token';
const digest = createHash('sha256').update(token).digest('hex');

const dns = await startDns({ address: harnessAddress(140, 53), mx: [{ domain: 'cust.bench.test', host: 'mx.bench.test', preference: 10 }], a: [{ name: 'mx.bench.test', ip: harnessAddress(140, 20) }] });
const node = await startMailNode({
  hostname: 'bench.cluster.test', address: harnessAddress(140, 1), relayDomains: ['cust.bench.test'], relayNetworks: ['127.0.0.0/8'],
  dnsServer: dns.server, deliveryPort: 2599, retryInterval: 36000, maxRetryInterval: 36000, selfAddresses: [harnessAddress(140, 1)],
  extraSmtpserverLines: [`PARAM admin-token-sha256 ${digest}`],
});
const call = async (method: string, path: string, body?: unknown): Promise<{ ms: number; bytes: number; json: Record<string, unknown> }> => {
  const t0 = performance.now();
  const res = await fetch(node.adminUrl + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return { ms, bytes: text.length, json: JSON.parse(text) as Record<string, unknown> };
};
try {
  const sent = await smtpSource({ server: node.smtp, count: messages, sessions: 8, from: 'sender@src.bench.test', to: 'user@cust.bench.test', reuseConnections: true, timeoutMs: 600_000 });
  if (sent.exitCode !== 0) throw new Error(`smtp-source: ${sent.stderr}`);
  await waitUntil(`${messages} deferred`, async () => Number((await node.queue()).deferred ?? 0) >= messages, { timeoutMs: 600_000, intervalMs: 500 });
  const samples: Record<string, number[]> = {};
  let listBytes = 0;
  for (let r = 0; r < runs; r++) {
    const list = await call('GET', '/queue/messages');
    listBytes = list.bytes;
    (samples['GET /queue/messages (all)'] ??= []).push(list.ms);
    (samples['GET /queue/messages?limit=100'] ??= []).push((await call('GET', '/queue/messages?limit=100')).ms);
    (samples['GET /queue/summary'] ??= []).push((await call('GET', '/queue/summary')).ms);
    const hold = await call('POST', '/queue/hold', { all: true });
    if (hold.json.count !== messages) throw new Error(`held ${String(hold.json.count)} of ${messages}`);
    (samples['POST /queue/hold {all} (durable)'] ??= []).push(hold.ms);
    (samples['POST /queue/release {all}'] ??= []).push((await call('POST', '/queue/release', { all: true })).ms);
    await waitUntil('deferred again', async () => Number((await node.queue()).deferred ?? 0) >= messages && Number((await node.queue()).held ?? 0) === 0, { timeoutMs: 120_000, intervalMs: 200 });
  }
  console.log(`queue-admin bench: ${messages} deferred messages on one node, ${runs} runs, medians (list JSON ${(listBytes / 1e6).toFixed(1)} MB)`);
  console.log(table(['request', 'median ms', 'per message µs'], Object.entries(samples).map(([k, v]) => [k, median(v), k.includes('limit=100') ? NaN : (median(v) * 1000) / messages])));
} finally {
  await node.close();
  await dns.stop();
}
