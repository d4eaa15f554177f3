// `mailcluster queue ...`: the queue operations against one node's admin URL.
import { readFileSync } from 'node:fs';
import { formatMailq, formatSummary } from '../../node-image/src/admin/queue-view.ts';
import type { MessageDetail, MessageView, OperationResult, QueueSummary } from '../../node-image/src/admin/queue-view.ts';
import { adminCall, directEndpoint, explainStatus } from './admin-client.ts';
import { parseArgs, queueRequest, QUEUE_BOOLEAN_FLAGS, QUEUE_USAGE, UsageError } from './queue-commands.ts';

const usage = `usage: mailcluster queue <operation> [flags] --url http://NODE:8025 [--token T | --token-file F] [-o table|json]
  --url defaults to $MAILCLUSTER_ADMIN_URL, the token to $MAILCLUSTER_ADMIN_TOKEN
${QUEUE_USAGE}`;

/** Text for one operation's answer (pure). */
export function renderQueueAnswer(op: string, json: unknown, node?: string): string {
  const j = json as Record<string, unknown>;
  if (op === 'list') return formatMailq(j.messages as MessageView[], node);
  if (op === 'summary') return formatSummary(j as unknown as QueueSummary);
  if (op === 'show') {
    const m = j.message as MessageDetail;
    const lines = [
      `id: ${m.id}${node ? `  (node ${node})` : ''}`, `state: ${m.state}`, `size: ${m.size}`, `received: ${m.receivedAt} (${m.ageSeconds}s ago)`,
      `attempts: ${m.attempts}`, `next attempt: ${m.nextAttempt ?? (m.held ? 'none (on hold)' : '-')}`,
      `client: ${m.envelope.clientAddress ?? '-'}`, `from: <${m.envelope.from}>`,
      ...m.envelope.recipients.map((r) => `to: <${r.address}> ${r.status}${r.error ? `: ${r.error}` : ''}`),
      '', m.headers,
    ];
    return lines.join('\n') + '\n';
  }
  const results = (j.results as OperationResult[]) ?? [];
  return results.map((r) => `${node ? `${node}: ` : ''}${r.id}: ${r.ok ? `${op} ok${r.message ? ` (${r.message.state})` : ''}` : `${r.code}: ${r.error}`}`).join('\n') + (results.length ? '\n' : `${node ? `${node}: ` : ''}no message selected\n`);
}

export async function main(argv: string[]): Promise<void> {
  let args;
  try {
    args = parseArgs(argv, new Set(QUEUE_BOOLEAN_FLAGS), { o: 'output', h: 'help' });
  } catch (err) {
    console.error(`mailcluster queue: ${(err as Error).message}\n${usage}`);
    process.exit(2);
  }
  const [op, ...ids] = args.positional;
  if (!op || args.flags.help) { console.log(usage); return; }
  const url = (args.flags.url as string | undefined) ?? process.env.MAILCLUSTER_ADMIN_URL;
  let token = (args.flags.token as string | undefined) ?? process.env.MAILCLUSTER_ADMIN_TOKEN;
  if (typeof args.flags['token-file'] === 'string') token = readFileSync(args.flags['token-file'], 'utf8').trim();
  const output = (args.flags.output as string | undefined) ?? 'table';
  try {
    if (!url) throw new UsageError('give the node\'s admin URL with --url (or $MAILCLUSTER_ADMIN_URL)');
    if (output !== 'table' && output !== 'json') throw new UsageError('-o takes table or json');
    const req = queueRequest(op, ids, args.flags);
    const ep = directEndpoint(url, url);
    const r = await adminCall(ep, token, req.method, req.path, req.body);
    if (r.json === null || (r.status !== 200 && !(r.json as { results?: unknown }).results)) {
      console.error(`mailcluster queue ${op}: ${explainStatus(ep, r)}`);
      process.exit(1);
    }
    process.stdout.write(output === 'json' ? JSON.stringify(r.json, null, 2) + '\n' : renderQueueAnswer(op, r.json));
    if (r.status !== 200) process.exit(1);
  } catch (err) {
    if (err instanceof UsageError) { console.error(`mailcluster queue: ${err.message}\n${usage}`); process.exit(2); }
    console.error(`mailcluster queue ${op}: ${(err as Error).message}`);
    process.exit(1);
  }
}
