// Pure decisions of the queue operations (issue 14): which messages a request selects,
// what a message looks like on the wire, the per-domain summary and the text tables the
// CLI and the kubectl plugin print. Modelled on Postfix `postqueue -p` / `postsuper` and
// ZMailer `mailq` (per message: id, size, arrival, sender, recipients with their last
// error, next attempt, hold state; `mailq -s`/qshape-like per-domain counts).
import type { QueuedMessageInfo } from '../delivery/queue.ts';
import type { RecipientState } from '../spool/records.ts';

/** Which messages a list or a batch operation selects. */
export interface QueueFilter {
  /** Recipient domain (an open recipient in it); with `subdomains`, `@domain` style. */
  domain?: string;
  subdomains?: boolean;
  /** Envelope sender, exact (case-insensitive); '<>' or '' selects the null sender. */
  sender?: string;
  held?: boolean;
  /** Messages at least this old (seconds). */
  minAgeSeconds?: number;
}

export interface ListRequest extends QueueFilter {
  limit?: number;
}

/** A batch operation: explicit ids, or every message the filter selects (`all` says so on purpose). */
export type Selection = { ids: string[] } | { all: true; filter: QueueFilter };

export class BadRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadRequest';
  }
}

const DOMAIN_RE = /^(?=.{1,254}$)@?[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;
const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

function parseBool(name: string, v: string | null | undefined | boolean): boolean | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new BadRequest(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

function parseFilterFields(get: (k: string) => string | boolean | number | null | undefined): QueueFilter {
  const f: QueueFilter = {};
  const domain = get('domain');
  if (domain !== undefined && domain !== null && domain !== '') {
    if (typeof domain !== 'string' || !DOMAIN_RE.test(domain)) throw new BadRequest(`bad domain ${JSON.stringify(domain)}`);
    f.subdomains = domain.startsWith('@') || parseBool('subdomains', get('subdomains') as string | undefined) === true;
    f.domain = domain.replace(/^@/, '').replace(/\.$/, '').toLowerCase();
  }
  const sender = get('sender');
  if (sender !== undefined && sender !== null) {
    if (typeof sender !== 'string' || sender.length > 320 || /[\s<>]/.test(sender.replace(/^<>$/, ''))) throw new BadRequest(`bad sender ${JSON.stringify(sender)}`);
    f.sender = sender === '<>' ? '' : sender.toLowerCase();
  }
  const held = parseBool('held', get('held') as string | boolean | undefined);
  if (held !== undefined) f.held = held;
  const minAge = get('minAgeSeconds');
  if (minAge !== undefined && minAge !== null && minAge !== '') {
    const n = Number(minAge);
    if (!Number.isFinite(n) || n < 0) throw new BadRequest(`minAgeSeconds must be a number >= 0, got ${JSON.stringify(minAge)}`);
    f.minAgeSeconds = n;
  }
  return f;
}

/** GET /queue/messages query → list request; throws BadRequest. */
export function parseListQuery(q: URLSearchParams): ListRequest {
  const known = new Set(['domain', 'subdomains', 'sender', 'held', 'minAgeSeconds', 'limit']);
  for (const k of q.keys()) if (!known.has(k)) throw new BadRequest(`unknown query parameter ${JSON.stringify(k)}`);
  const r: ListRequest = parseFilterFields((k) => q.get(k) ?? undefined);
  const limit = q.get('limit');
  if (limit !== null && limit !== '') {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > 100000) throw new BadRequest(`limit must be an integer 1..100000, got ${JSON.stringify(limit)}`);
    r.limit = n;
  }
  return r;
}

/** POST body of hold/release/retry/delete → selection (+ dsn for delete); throws BadRequest. */
export function parseOperationBody(body: Buffer, allowDsn: boolean): { selection: Selection; dsn: boolean } {
  let v: unknown;
  try {
    v = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch {
    throw new BadRequest('body must be JSON: {"ids": ["ID", ...]} or {"all": true, "domain": ...}');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadRequest('body must be a JSON object');
  const o = v as Record<string, unknown>;
  const known = new Set(['ids', 'all', 'domain', 'subdomains', 'sender', 'held', 'minAgeSeconds', ...(allowDsn ? ['dsn'] : [])]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new BadRequest(`unknown field ${JSON.stringify(k)}`);
  for (const k of ['dsn', 'held', 'subdomains', 'all']) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new BadRequest(`${k} must be true or false (a JSON boolean)`);
  }
  if (o.minAgeSeconds !== undefined && typeof o.minAgeSeconds !== 'number') throw new BadRequest('minAgeSeconds must be a number');
  const dsn = o.dsn === true;
  if (o.ids !== undefined) {
    if (o.all !== undefined) throw new BadRequest('give either ids or all, not both');
    if (!Array.isArray(o.ids) || o.ids.length === 0 || o.ids.length > 10000) throw new BadRequest('ids must be a non-empty array (at most 10000)');
    for (const id of o.ids) if (typeof id !== 'string' || !ID_RE.test(id)) throw new BadRequest(`bad message id ${JSON.stringify(id)}`);
    return { selection: { ids: [...new Set(o.ids as string[])] }, dsn };
  }
  if (o.all !== true) throw new BadRequest('select messages with "ids": [...] or "all": true (optionally narrowed by domain, sender, held, minAgeSeconds)');
  return { selection: { all: true, filter: parseFilterFields((k) => o[k] as string | undefined) }, dsn };
}

function domainOfAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return (at < 0 ? '' : address.slice(at + 1)).toLowerCase();
}

function domainSelected(domain: string, f: QueueFilter): boolean {
  if (f.domain === undefined) return true;
  return domain === f.domain || (f.subdomains === true && domain.endsWith('.' + f.domain));
}

export function matchesFilter(m: QueuedMessageInfo, f: QueueFilter, now: number): boolean {
  if (f.held !== undefined && m.held !== f.held) return false;
  if (f.sender !== undefined && m.sender.toLowerCase() !== f.sender) return false;
  if (f.minAgeSeconds !== undefined && (now - m.receivedAt) / 1000 < f.minAgeSeconds) return false;
  if (f.domain !== undefined && !m.recipients.some((r) => domainSelected(domainOfAddress(r), f))) return false;
  return true;
}

/** Oldest first, as mailq shows them. */
export function filterMessages(list: readonly QueuedMessageInfo[], f: ListRequest, now: number): QueuedMessageInfo[] {
  const out = list.filter((m) => matchesFilter(m, f, now)).sort((a, b) => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : 1));
  return f.limit !== undefined ? out.slice(0, f.limit) : out;
}

/** The ids a selection names, in a stable order. */
export function selectIds(list: readonly QueuedMessageInfo[], s: Selection, now: number): string[] {
  if ('ids' in s) return s.ids;
  return filterMessages(list, s.filter, now).map((m) => m.id);
}

/** What the admin API shows for one message (postqueue -p / mailq fields). */
export interface MessageView {
  id: string;
  /** 'held' | 'active' (an attempt runs now) | 'deferred' (tried, waiting) | 'queued' (not tried yet). */
  state: 'held' | 'active' | 'deferred' | 'queued';
  sender: string;
  recipients: string[];
  size: number;
  receivedAt: string;
  ageSeconds: number;
  attempts: number;
  /** null while held (a held message is never attempted). */
  nextAttempt: string | null;
  lastError: string | null;
  held: boolean;
}

export function messageState(m: QueuedMessageInfo): MessageView['state'] {
  if (m.held) return 'held';
  if (m.inFlight) return 'active';
  return m.attempts > 0 ? 'deferred' : 'queued';
}

export function messageView(m: QueuedMessageInfo, now: number): MessageView {
  return {
    id: m.id,
    state: messageState(m),
    sender: m.sender,
    recipients: m.recipients,
    size: m.size,
    receivedAt: new Date(m.receivedAt).toISOString(),
    ageSeconds: Math.max(0, Math.floor((now - m.receivedAt) / 1000)),
    attempts: m.attempts,
    nextAttempt: m.held ? null : new Date(m.nextAttempt).toISOString(),
    lastError: m.lastError ?? null,
    held: m.held,
  };
}

/** One message in full: the view, every recipient with its state, and the header section. */
export interface MessageDetail extends MessageView {
  envelope: { from: string; recipients: RecipientState[]; clientAddress: string | null; bounce: boolean };
  headers: string;
}

/** One row of the per-domain summary (by open recipient; a message to two domains counts in both). */
export interface DomainSummaryRow {
  domain: string;
  messages: number;
  recipients: number;
  held: number;
  deferred: number;
  bytes: number;
  oldestSeconds: number;
}

export interface QueueSummary {
  total: number;
  held: number;
  deferred: number;
  active: number;
  bytes: number;
  oldestSeconds: number | null;
  domains: DomainSummaryRow[];
}

/** Totals and per-domain rows, most recipients first (qshape's question: who is it for?). */
export function summarizeQueue(list: readonly QueuedMessageInfo[], now: number): QueueSummary {
  const rows = new Map<string, DomainSummaryRow>();
  let oldest = Infinity;
  const s: QueueSummary = { total: list.length, held: 0, deferred: 0, active: 0, bytes: 0, oldestSeconds: null, domains: [] };
  for (const m of list) {
    const state = messageState(m);
    if (state === 'held') s.held++;
    else if (state === 'deferred') s.deferred++;
    else if (state === 'active') s.active++;
    s.bytes += m.size;
    oldest = Math.min(oldest, m.receivedAt);
    const age = Math.max(0, Math.floor((now - m.receivedAt) / 1000));
    const seen = new Set<string>();
    for (const r of m.recipients) {
      const d = domainOfAddress(r);
      let row = rows.get(d);
      if (!row) rows.set(d, (row = { domain: d, messages: 0, recipients: 0, held: 0, deferred: 0, bytes: 0, oldestSeconds: 0 }));
      row.recipients++;
      if (seen.has(d)) continue;
      seen.add(d);
      row.messages++;
      row.bytes += m.size;
      if (state === 'held') row.held++;
      if (state === 'deferred') row.deferred++;
      row.oldestSeconds = Math.max(row.oldestSeconds, age);
    }
  }
  s.oldestSeconds = oldest === Infinity ? null : Math.max(0, Math.floor((now - oldest) / 1000));
  s.domains = [...rows.values()].sort((a, b) => b.recipients - a.recipients || (a.domain < b.domain ? -1 : 1));
  return s;
}

/** Per-message outcome of a batch operation. */
export interface OperationResult {
  id: string;
  ok: boolean;
  error?: string;
  code?: string;
  message?: MessageView;
}

/** 200 when every one succeeded (or none was selected), 404 when every failure is an unknown id, else 409. */
export function batchStatus(results: readonly OperationResult[]): number {
  const failed = results.filter((r) => !r.ok);
  if (failed.length === 0) return 200;
  if (failed.length === results.length && failed.every((r) => r.code === 'not-found')) return 404;
  return 409;
}

// ---- text output (CLI, kubectl plugin) ----

/** `3h12m`, `45s`, `2d4h`: an age the way people read queues. */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? `${Math.floor((s % 86400) / 3600)}h` : ''}`;
}

/** A plain table: columns padded to their widest cell, two spaces apart (kubectl's look). */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/**
 * postqueue -p's layout: one block per message (id with `!` when held and `*` when active,
 * size, arrival, sender; then the last error in parentheses and the recipients), and the
 * "-- N Kbytes in M Requests." trailer.
 */
export function formatMailq(messages: readonly MessageView[], node?: string): string {
  if (messages.length === 0) return `${node ? `${node}: ` : ''}Mail queue is empty\n`;
  const out: string[] = [];
  if (node) out.push(`# ${node}`);
  out.push('-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------');
  let bytes = 0;
  for (const m of messages) {
    bytes += m.size;
    const mark = m.held ? '!' : m.state === 'active' ? '*' : '';
    out.push(`${(m.id + mark).padEnd(11)} ${String(m.size).padStart(8)} ${m.receivedAt.replace('T', ' ').slice(0, 19).padEnd(20)} ${m.sender === '' ? 'MAILER-DAEMON' : m.sender}`);
    const notes = [m.lastError ? m.lastError.replace(/\s+/g, ' ').slice(0, 200) : null,
      m.held ? 'on hold' : m.nextAttempt ? `next attempt ${m.nextAttempt.replace('T', ' ').slice(0, 19)}Z, attempts ${m.attempts}` : null].filter(Boolean);
    for (const n of notes) out.push(`${' '.repeat(42)}(${n})`);
    for (const r of m.recipients) out.push(`${' '.repeat(42)}${r}`);
    out.push('');
  }
  out.push(`-- ${Math.ceil(bytes / 1024)} Kbytes in ${messages.length} Request${messages.length === 1 ? '' : 's'}.`);
  return out.join('\n') + '\n';
}

export function formatSummary(s: QueueSummary): string {
  const head = `total ${s.total}  held ${s.held}  deferred ${s.deferred}  active ${s.active}  bytes ${s.bytes}  oldest ${formatAge(s.oldestSeconds)}\n`;
  if (s.domains.length === 0) return head;
  return head + formatTable(['DOMAIN', 'MESSAGES', 'RECIPIENTS', 'HELD', 'DEFERRED', 'BYTES', 'OLDEST'],
    s.domains.map((d) => [d.domain || '(none)', String(d.messages), String(d.recipients), String(d.held), String(d.deferred), String(d.bytes), formatAge(d.oldestSeconds)]));
}
