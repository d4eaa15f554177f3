// Counting one client's API requests from kube-apiserver's audit log: apiserver_request_total
// has no user label, so the bench gives the operator its own user and logs (Metadata level)
// that user's requests only. Pure functions over the log's JSON lines.

/** The audit policy: Metadata for `user`, nothing for anyone else. */
export function auditPolicy(user: string): string {
  return [
    'apiVersion: audit.k8s.io/v1',
    'kind: Policy',
    'omitStages: ["RequestReceived"]',
    'rules:',
    '  - level: Metadata',
    `    users: [${JSON.stringify(user)}]`,
    '  - level: None',
    '',
  ].join('\n');
}

export interface AuditRequest {
  /** ms since the epoch, when the API server received it. */
  at: number;
  verb: string;
  /** resource, with `/subresource` when there is one. */
  resource: string;
  code: number;
  user: string;
  userAgent: string;
}

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
export const isWrite = (verb: string): boolean => WRITE_VERBS.has(verb);

function epochMs(ts: string): number {
  // RFC 3339 with microseconds: keep milliseconds, which Date.parse reads everywhere.
  return Date.parse(ts.replace(/(\.\d{3})\d*/, '$1'));
}

/**
 * One request per audit line that completes it: ResponseComplete for ordinary requests,
 * ResponseStarted for watches (a watch may outlive the run). Other lines give undefined.
 */
export function parseAuditLine(line: string): AuditRequest | undefined {
  if (!line.trim()) return undefined;
  let e: Record<string, any>;
  try {
    e = JSON.parse(line);
  } catch {
    return undefined;
  }
  const watch = e.verb === 'watch';
  if (!(watch ? e.stage === 'ResponseStarted' : e.stage === 'ResponseComplete')) return undefined;
  const ref = e.objectRef ?? {};
  return {
    at: epochMs(e.requestReceivedTimestamp ?? e.stageTimestamp),
    verb: String(e.verb),
    resource: ref.resource ? `${ref.resource}${ref.subresource ? `/${ref.subresource}` : ''}` : String(e.requestURI ?? '?').split('?')[0],
    code: Number(e.responseStatus?.code ?? 0),
    user: String(e.user?.username ?? ''),
    userAgent: String(e.userAgent ?? ''),
  };
}

export interface RequestSummary {
  total: number;
  writes: number;
  seconds: number;
  perSecond: number;
  writesPerSecond: number;
  /** "verb resource" -> count, most first. */
  byVerbResource: Array<[string, number]>;
  /** "2xx", "4xx" (404, 409 and 429 apart), ... -> count. */
  byCode: Record<string, number>;
}

/** The requests received in [fromMs, toMs). */
export function summarize(reqs: AuditRequest[], fromMs: number, toMs: number): RequestSummary {
  const inWindow = reqs.filter((r) => r.at >= fromMs && r.at < toMs);
  const byVR = new Map<string, number>();
  const byCode: Record<string, number> = {};
  for (const r of inWindow) {
    const k = `${r.verb} ${r.resource}`;
    byVR.set(k, (byVR.get(k) ?? 0) + 1);
    const c = r.code === 404 || r.code === 409 || r.code === 429 ? String(r.code) : `${Math.floor(r.code / 100)}xx`;
    byCode[c] = (byCode[c] ?? 0) + 1;
  }
  const seconds = Math.max(0.001, (toMs - fromMs) / 1000);
  const writes = inWindow.filter((r) => isWrite(r.verb)).length;
  return {
    total: inWindow.length,
    writes,
    seconds,
    perSecond: inWindow.length / seconds,
    writesPerSecond: writes / seconds,
    byVerbResource: [...byVR.entries()].sort((a, b) => b[1] - a[1]),
    byCode,
  };
}

/** The largest number of requests received within any one whole second of the window. */
export function peakPerSecond(reqs: AuditRequest[], fromMs: number, toMs: number): number {
  const buckets = new Map<number, number>();
  for (const r of reqs) if (r.at >= fromMs && r.at < toMs) buckets.set(Math.floor((r.at - fromMs) / 1000), (buckets.get(Math.floor((r.at - fromMs) / 1000)) ?? 0) + 1);
  return Math.max(0, ...buckets.values());
}

/** Sums of a Prometheus text exposition's counter `name`, grouped by the given labels. */
export function sumMetric(text: string, name: string, by: string[] = []): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const key = by.map((b) => labels[b] ?? '').join(' ');
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

/** after - before, per key (keys of either side). */
export function metricDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    const d = (after.get(k) ?? 0) - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}
