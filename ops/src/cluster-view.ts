// Pure parts of `kubectl mailcluster`: which pods are the cluster's nodes, what `status`
// shows per node, and merging per-node answers.
import { formatAge, formatTable } from '../../node-image/src/admin/queue-view.ts';
import type { DomainSummaryRow, QueueSummary } from '../../node-image/src/admin/queue-view.ts';

/** The fields of a Pod the plugin uses. */
export interface NodePod {
  name: string;
  index: number;
  role: string;
  phase: string;
  ready: boolean;
  podIP: string | null;
}

interface PodLike {
  metadata?: { name?: string; labels?: Record<string, string>; deletionTimestamp?: unknown };
  status?: { phase?: string; podIP?: string; conditions?: Array<{ type?: string; status?: string }> };
}

/** The MailCluster's node pods, by index (DESIGN labels: mailcluster.io/index, mailcluster.io/role). */
export function nodePods(pods: readonly PodLike[]): NodePod[] {
  return pods
    .filter((p) => p.metadata?.name && p.metadata.labels?.['app.kubernetes.io/name'] === 'mailcluster-node')
    .map((p) => ({
      name: p.metadata!.name!,
      index: Number(p.metadata!.labels?.['mailcluster.io/index'] ?? NaN),
      role: p.metadata!.labels?.['mailcluster.io/role'] ?? '-',
      phase: p.metadata!.deletionTimestamp ? 'Terminating' : p.status?.phase ?? 'Unknown',
      ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      podIP: p.status?.podIP ?? null,
    }))
    .sort((a, b) => (a.index - b.index) || (a.name < b.name ? -1 : 1));
}

/** GET /queue as the node answers it (contract 2; older nodes send `oldest` as an ISO time). */
export interface QueueReport {
  total?: number;
  deferred?: number;
  held?: number;
  draining?: boolean;
  drained?: boolean;
  oldestSeconds?: number | null;
  oldest?: string | null;
}

export function oldestSeconds(r: QueueReport, now: number): number | null {
  if (typeof r.oldestSeconds === 'number') return r.oldestSeconds;
  if (typeof r.oldest === 'string') return Math.max(0, Math.floor((now - Date.parse(r.oldest)) / 1000));
  return null;
}

export interface StatusRow {
  node: string;
  role: string;
  phase: string;
  ready: boolean;
  podIP: string | null;
  queue: number | null;
  held: number | null;
  deferred: number | null;
  oldestSeconds: number | null;
  draining: boolean | null;
  drained: boolean | null;
  error: string | null;
}

export function statusRow(pod: NodePod, report: QueueReport | null, error: string | null, now: number): StatusRow {
  return {
    node: pod.name, role: pod.role, phase: pod.phase, ready: pod.ready, podIP: pod.podIP,
    queue: report?.total ?? null, held: report?.held ?? null, deferred: report?.deferred ?? null,
    oldestSeconds: report ? oldestSeconds(report, now) : null,
    draining: report?.draining ?? null, drained: report?.drained ?? null, error,
  };
}

const n = (v: number | null) => (v === null ? '-' : String(v));

export function formatStatus(cluster: string, rows: readonly StatusRow[]): string {
  const table = formatTable(['NODE', 'ROLE', 'PHASE', 'READY', 'IP', 'QUEUE', 'HELD', 'DEFERRED', 'OLDEST', 'STATE'],
    rows.map((r) => [r.node, r.role, r.phase, r.ready ? 'true' : 'false', r.podIP ?? '-', n(r.queue), n(r.held), n(r.deferred), formatAge(r.oldestSeconds),
      r.error ? `error: ${r.error}` : r.drained ? 'drained' : r.draining ? 'draining' : 'serving']));
  const total = rows.reduce((s, r) => s + (r.queue ?? 0), 0);
  return `MailCluster ${cluster}: ${rows.length} node(s), ${total} message(s) queued\n${table}`;
}

/** The cluster's queue summary from every node's (pure): totals add up, domain rows merge, oldest is the max. */
export function mergeSummaries(summaries: readonly QueueSummary[]): QueueSummary {
  const out: QueueSummary = { total: 0, held: 0, deferred: 0, active: 0, bytes: 0, oldestSeconds: null, domains: [] };
  const rows = new Map<string, DomainSummaryRow>();
  for (const s of summaries) {
    out.total += s.total; out.held += s.held; out.deferred += s.deferred; out.active += s.active; out.bytes += s.bytes;
    if (s.oldestSeconds !== null) out.oldestSeconds = Math.max(out.oldestSeconds ?? 0, s.oldestSeconds);
    for (const d of s.domains) {
      const r = rows.get(d.domain);
      if (!r) { rows.set(d.domain, { ...d }); continue; }
      r.messages += d.messages; r.recipients += d.recipients; r.held += d.held; r.deferred += d.deferred; r.bytes += d.bytes;
      r.oldestSeconds = Math.max(r.oldestSeconds, d.oldestSeconds);
    }
  }
  out.domains = [...rows.values()].sort((a, b) => b.recipients - a.recipients || (a.domain < b.domain ? -1 : 1));
  return out;
}
