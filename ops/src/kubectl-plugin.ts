// `kubectl mailcluster`: operate every node of a MailCluster at once through the kubeconfig.
// Nodes are reached through the API server's pod proxy (works wherever kubectl works) or
// directly at their pod IPs (`--via direct`: from inside the cluster network). The default,
// `--via auto`, is the proxy, except for loopback pod IPs (127.x: pods run as processes on
// this host): the API server refuses to proxy to those ("address not allowed"), and they are
// reachable from this host. Local mode's pods are 10.244.x and go through the proxy. The
// admin token comes from Secret `<cluster>-admin` key `token` (BRIEF contract 1) unless
// --token is given.
import { readFileSync } from 'node:fs';
import type https from 'node:https';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { formatAge, formatMailq, formatTable } from '../../node-image/src/admin/queue-view.ts';
import type { MessageView, OperationResult, QueueSummary } from '../../node-image/src/admin/queue-view.ts';
import { PROXY_AUTH_HEADER } from '../../node-image/src/admin/auth.ts';
import { adminCall, explainStatus, podProxyUrl } from './admin-client.ts';
import type { AdminEndpoint } from './admin-client.ts';
import { formatStatus, mergeSummaries, nodePods, statusRow } from './cluster-view.ts';
import type { NodePod, QueueReport, StatusRow } from './cluster-view.ts';
import { sayEtrn } from './etrn-client.ts';
import { parseArgs, queueRequest, QUEUE_BOOLEAN_FLAGS, QUEUE_USAGE, UsageError } from './queue-commands.ts';
import { renderQueueAnswer } from './queue-cli.ts';

const ADMIN_PORT = 8025;

const usage = `usage: kubectl mailcluster [-n NAMESPACE] [-c CLUSTER] [--kubeconfig F] [--context C]
                          [--via auto|proxy|direct] [--token T] [-o table|json] COMMAND
  status                       every node: role (serving/draining), phase, queue, held, oldest
${QUEUE_USAGE.split('\n').slice(1).join('\n')}
                               (queue operations go to every node at once; --node POD for one)
  etrn DOMAIN [--address HOST:PORT]   say ETRN DOMAIN to Addr[0] over SMTP
  drain NODE [--wait]          POST /drain to one node (the operator drains on scale-down by itself)
-c defaults to the only MailCluster in the namespace; the token to Secret <cluster>-admin key token.`;

interface Context {
  kc: KubeConfig;
  namespace: string;
  cluster: string;
  via: 'proxy' | 'direct' | 'auto';
  token?: string;
  tokenSource: string;
  output: 'table' | 'json';
}

async function endpointFor(ctx: Context, pod: NodePod): Promise<AdminEndpoint> {
  if (ctx.via === 'direct' || (ctx.via === 'auto' && pod.podIP !== null && isLoopback(pod.podIP))) {
    if (!pod.podIP) throw new Error(`${pod.name} has no pod IP`);
    return { name: pod.name, baseUrl: `http://${pod.podIP}:${ADMIN_PORT}`, credentialHeader: 'authorization' };
  }
  const server = ctx.kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig names no cluster server');
  const requestOptions: https.RequestOptions = {};
  await ctx.kc.applyToHTTPSOptions(requestOptions);
  return { name: pod.name, baseUrl: podProxyUrl(server, ctx.namespace, pod.name, ADMIN_PORT), requestOptions, credentialHeader: PROXY_AUTH_HEADER };
}

function isLoopback(ip: string): boolean {
  return /^127\./.test(ip) || ip === '::1';
}

async function findCluster(kc: KubeConfig, namespace: string, given?: string): Promise<{ name: string; object: Record<string, unknown> }> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: 'mailcluster.io', version: 'v1alpha1', namespace, plural: 'mailclusters' };
  if (given) return { name: given, object: await api.getNamespacedCustomObject({ ...ref, name: given }) as Record<string, unknown> };
  const list = await api.listNamespacedCustomObject(ref) as { items: Array<Record<string, unknown> & { metadata: { name: string } }> };
  if (list.items.length === 1) return { name: list.items[0].metadata.name, object: list.items[0] };
  throw new UsageError(list.items.length === 0 ? `no MailCluster in namespace ${namespace}` : `${list.items.length} MailClusters in ${namespace} (${list.items.map((i) => i.metadata.name).join(', ')}): choose one with -c`);
}

async function readToken(kc: KubeConfig, namespace: string, cluster: string): Promise<string | undefined> {
  try {
    const secret = await kc.makeApiClient(CoreV1Api).readNamespacedSecret({ name: `${cluster}-admin`, namespace });
    const b64 = secret.data?.token;
    return b64 ? Buffer.from(b64, 'base64').toString('utf8').trim() : undefined;
  } catch {
    return undefined;
  }
}

async function pods(ctx: Context, only?: string): Promise<NodePod[]> {
  const list = await ctx.kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ctx.namespace, labelSelector: `mailcluster.io/cluster=${ctx.cluster}` });
  const all = nodePods(list.items);
  if (only === undefined) return all;
  const one = all.filter((p) => p.name === only);
  if (one.length === 0) throw new UsageError(`no node ${only} in MailCluster ${ctx.cluster} (nodes: ${all.map((p) => p.name).join(', ') || 'none'})`);
  return one;
}

function needToken(ctx: Context): string {
  if (!ctx.token) throw new Error(`no admin token: ${ctx.tokenSource}; pass --token or create Secret ${ctx.cluster}-admin (the operator does, contract 1)`);
  return ctx.token;
}

async function status(ctx: Context): Promise<number> {
  const now = Date.now();
  const rows: StatusRow[] = await Promise.all((await pods(ctx)).map(async (pod) => {
    try {
      const ep = await endpointFor(ctx, pod);
      const r = await adminCall(ep, undefined, 'GET', '/queue', undefined, 10_000);
      if (r.status !== 200) return statusRow(pod, null, explainStatus(ep, r), now);
      return statusRow(pod, r.json as QueueReport, null, now);
    } catch (err) {
      return statusRow(pod, null, (err as Error).message, now);
    }
  }));
  process.stdout.write(ctx.output === 'json' ? JSON.stringify({ cluster: ctx.cluster, namespace: ctx.namespace, nodes: rows }, null, 2) + '\n' : formatStatus(ctx.cluster, rows));
  return rows.some((r) => r.error) ? 1 : 0;
}

async function queue(ctx: Context, op: string, ids: string[], flags: Record<string, string | true>): Promise<number> {
  const req = queueRequest(op, ids, flags);
  const token = needToken(ctx);
  const targets = await pods(ctx, typeof flags.node === 'string' ? flags.node : undefined);
  const answers = await Promise.all(targets.map(async (pod) => {
    try {
      const ep = await endpointFor(ctx, pod);
      const r = await adminCall(ep, token, req.method, req.path, req.body);
      return { node: pod.name, status: r.status, json: r.json, error: r.status === 200 || (r.json as { results?: unknown } | null)?.results ? null : explainStatus(ep, r) };
    } catch (err) {
      return { node: pod.name, status: 0, json: null, error: (err as Error).message };
    }
  }));
  // a message lives on one node: for ids, "not found" elsewhere is expected
  let exit = answers.some((a) => a.error && !(a.status === 404 && (op === 'show' || ids.length > 0))) ? 1 : 0;
  if (op === 'show') {
    const found = answers.filter((a) => a.status === 200);
    if (found.length === 0) { exit = 1; console.error(`message ${ids[0]} is on no node of ${ctx.cluster}`); }
    process.stdout.write(ctx.output === 'json' ? JSON.stringify(found.map((a) => ({ ...(a.json as object), node: a.node, hostname: (a.json as { node?: string }).node })), null, 2) + '\n' : found.map((a) => renderQueueAnswer('show', a.json, a.node)).join('\n'));
  } else if (ctx.output === 'json') {
    process.stdout.write(JSON.stringify({ cluster: ctx.cluster, operation: op, nodes: answers.map((a) => ({ ...(a.json as object ?? {}), node: a.node, hostname: (a.json as { node?: string } | null)?.node ?? null, status: a.status, error: a.error })) }, null, 2) + '\n');
  } else if (op === 'list') {
    const rows: string[][] = [];
    for (const a of answers) {
      for (const m of ((a.json as { messages?: MessageView[] } | null)?.messages ?? [])) {
        rows.push([a.node, m.id, m.state, String(m.size), new Date(Date.now() - m.ageSeconds * 1000).toISOString().slice(0, 19) + 'Z', m.sender || '<>', m.recipients.join(','), (m.lastError ?? '').slice(0, 60)]);
      }
    }
    process.stdout.write(rows.length ? formatTable(['NODE', 'ID', 'STATE', 'SIZE', 'RECEIVED', 'SENDER', 'RECIPIENTS', 'LAST ERROR'], rows) : 'Mail queue is empty on every node\n');
    if (flags.mailq) for (const a of answers) process.stdout.write(formatMailq((a.json as { messages?: MessageView[] } | null)?.messages ?? [], a.node));
  } else {
    for (const a of answers) {
      if (a.error && !(a.status === 404 && ids.length > 0)) { process.stdout.write(`${a.node}: ${a.error}\n`); continue; }
      if (op === 'summary') continue;
      const results = ((a.json as { results?: OperationResult[] } | null)?.results ?? []).filter((r) => !(ids.length > 0 && r.code === 'not-found'));
      for (const r of results) process.stdout.write(`${a.node}: ${r.id}: ${r.ok ? `${op} ok (${r.message?.state ?? ''})` : `${r.code}: ${r.error}`}\n`);
    }
    if (op === 'summary') {
      const ok = answers.filter((a) => a.status === 200);
      process.stdout.write(`MailCluster ${ctx.cluster} (${ok.length} of ${answers.length} node(s)): ${renderQueueAnswer('summary', mergeSummaries(ok.map((a) => a.json as QueueSummary)))}`);
      for (const a of ok) {
        const s = a.json as QueueSummary;
        process.stdout.write(`  ${a.node}: total ${s.total}  held ${s.held}  deferred ${s.deferred}  oldest ${formatAge(s.oldestSeconds)}\n`);
      }
    }
    if (ids.length > 0) {
      const done = new Set(answers.flatMap((a) => ((a.json as { results?: OperationResult[] } | null)?.results ?? []).filter((r) => r.code !== 'not-found').map((r) => r.id)));
      for (const id of ids) if (!done.has(id)) { exit = 1; process.stdout.write(`${id}: on no node of ${ctx.cluster}\n`); }
    }
  }
  return exit;
}

async function etrn(ctx: Context, object: Record<string, unknown>, domain: string | undefined, address?: string): Promise<number> {
  if (!domain) throw new UsageError('etrn needs a DOMAIN');
  let host: string | undefined;
  let port: number;
  if (address) {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
    if (!m) throw new UsageError('--address takes HOST:PORT');
    host = m[1]; port = Number(m[2]);
  } else {
    host = (object.status as { address?: string } | undefined)?.address;
    port = (object.spec as { service?: { port?: number } } | undefined)?.service?.port ?? 25;
    if (!host) throw new Error(`MailCluster ${ctx.cluster} has no status.address yet (Addr[0]); give --address HOST:PORT`);
  }
  const r = await sayEtrn(host, port, domain);
  process.stdout.write(ctx.output === 'json' ? JSON.stringify({ cluster: ctx.cluster, address: `${host}:${port}`, domain, code: r.code, reply: r.reply.split('\n') }, null, 2) + '\n' : `${host}:${port} ETRN ${domain}\n${r.reply}\n`);
  return r.code >= 250 && r.code <= 253 ? 0 : 1;
}

async function drain(ctx: Context, node: string | undefined, wait: boolean): Promise<number> {
  if (!node) throw new UsageError('drain needs a NODE (a pod name; see status)');
  const token = needToken(ctx);
  const [pod] = await pods(ctx, node);
  const ep = await endpointFor(ctx, pod);
  let r = await adminCall(ep, token, 'POST', '/drain');
  if (r.status !== 202 && r.status !== 200) throw new Error(explainStatus(ep, r));
  for (;;) {
    const q = await adminCall(ep, undefined, 'GET', '/queue');
    const report = q.json as QueueReport & { drained?: boolean };
    if (!wait || report?.drained || (report?.draining && report?.total === 0)) {
      process.stdout.write(ctx.output === 'json' ? JSON.stringify({ node, drain: r.json, queue: report }, null, 2) + '\n'
        : `${node}: draining; ${report?.total ?? '?'} message(s) left${report?.held ? `, ${report.held} on hold (release or delete them)` : ''}${report?.drained ? '; drained' : ''}\n`);
      return 0;
    }
    await new Promise((res) => setTimeout(res, 2000));
    r = await adminCall(ep, undefined, 'GET', '/drain');
  }
}

export async function main(argv: string[]): Promise<void> {
  let exit = 0;
  try {
    const args = parseArgs(argv, new Set([...QUEUE_BOOLEAN_FLAGS, 'wait', 'mailq']), { o: 'output', n: 'namespace', c: 'cluster', h: 'help' });
    const [command, ...rest] = args.positional;
    if (!command || args.flags.help) { console.log(usage); return; }
    const kc = new KubeConfig();
    if (typeof args.flags.kubeconfig === 'string') kc.loadFromFile(args.flags.kubeconfig); else kc.loadFromDefault();
    if (typeof args.flags.context === 'string') kc.setCurrentContext(args.flags.context);
    const namespace = (args.flags.namespace as string | undefined) ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    const via = (args.flags.via as string | undefined) ?? 'auto';
    if (via !== 'proxy' && via !== 'direct' && via !== 'auto') throw new UsageError('--via takes auto, proxy or direct');
    const output = (args.flags.output as string | undefined) ?? 'table';
    if (output !== 'table' && output !== 'json') throw new UsageError('-o takes table or json');
    const { name, object } = await findCluster(kc, namespace, args.flags.cluster as string | undefined);
    let token = args.flags.token as string | undefined ?? process.env.MAILCLUSTER_ADMIN_TOKEN;
    if (typeof args.flags['token-file'] === 'string') token = readFileSync(args.flags['token-file'], 'utf8').trim();
    let tokenSource = 'given';
    if (!token && command !== 'status' && command !== 'etrn') {
      token = await readToken(kc, namespace, name);
      tokenSource = token ? `Secret ${name}-admin` : `Secret ${namespace}/${name}-admin (key token) not found or not readable`;
    }
    const ctx: Context = { kc, namespace, cluster: name, via, token, tokenSource, output };
    switch (command) {
      case 'status': exit = await status(ctx); break;
      case 'queue': exit = await queue(ctx, rest[0] ?? '', rest.slice(1), args.flags); break;
      case 'etrn': exit = await etrn(ctx, object, rest[0], args.flags.address as string | undefined); break;
      case 'drain': exit = await drain(ctx, rest[0], args.flags.wait === true); break;
      default: throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) { console.error(`kubectl mailcluster: ${err.message}\n${usage}`); process.exit(2); }
    const e = err as Error & { code?: number; body?: unknown };
    console.error(`kubectl mailcluster: ${e.message}`);
    process.exit(1);
  }
  process.exit(exit);
}
