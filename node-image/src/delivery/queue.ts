// The delivery queue: schedules attempts for spooled messages (due times, backoff,
// concurrency), delivers through the MX router and the transport pool, bounces, and is
// the queue API that ETRN, MAILQv2 and drain build on.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.ts';
import type { MxRouter } from '../routing/dns.ts';
import { domainOf } from '../routing/route.ts';
import type { MessageMeta, RecipientState } from '../spool/records.ts';
import type { BlobWriter, Spool } from '../spool/spool.ts';
import { buildDsn, headerSection, statusFromDiagnostic } from './dsn.ts';
import type { FailedRecipient } from './dsn.ts';
import { backoffMs, classifySendError, deliveryHeldBytes, domainMatches, fitsContentBudget } from './policy.ts';
import { BLOB_STREAM_HELD_BYTES } from './message-content.ts';
import type { MessageContent } from './message-content.ts';
import type { DomainSelector } from './policy.ts';
import type { Sender } from './transports.ts';

export type { DomainSelector };

export interface QueueSettings {
  hostname: string;
  smtpPort: number;
  retryIntervalMs: number;
  maxRetryIntervalMs: number;
  queueLifetimeMs: number;
  concurrency: number;
  /**
   * Bytes of message content held in memory for delivery at once (messages wait for room; one
   * larger than this goes alone). A blob-backed message is streamed and counts only what its
   * stream holds (BLOB_STREAM_HELD_BYTES).
   */
  contentBudgetBytes?: number;
}

/** Default content budget: a few large messages in flight, not `concurrency` of them. */
export const DEFAULT_DELIVERY_CONTENT_BUDGET = 32 * 1024 * 1024;

/** What the queue API reports about one message. */
export interface QueuedMessageInfo {
  id: string;
  sender: string;
  /** Recipients still to deliver (pending or deferred). */
  recipients: string[];
  size: number;
  receivedAt: number;
  attempts: number;
  nextAttempt: number;
  lastError?: string;
  inFlight: boolean;
  /** On hold: no attempt, ETRN or drain hand-off until released (survives restarts). */
  held: boolean;
}

/** Why a queue operation on one message was refused. */
export class QueueOperationError extends Error {
  readonly code: 'not-found' | 'in-flight' | 'held' | 'draining';
  constructor(code: 'not-found' | 'in-flight' | 'held' | 'draining', message: string) {
    super(message);
    this.name = 'QueueOperationError';
    this.code = code;
  }
}

const OPEN = new Set(['pending', 'deferred']);
const HOT_LIMIT_BYTES = 64 * 1024 * 1024;

// Queue ids: time, a per-process random part and a counter (no syscall per id).
const processTag = randomBytes(3).toString('hex');
let idCounter = 0;
export function newMessageId(): string {
  idCounter = (idCounter + 1) % 0x1000000;
  return `${Date.now().toString(36)}${processTag}${idCounter.toString(36).padStart(5, '0')}`.toUpperCase();
}

/** A min-heap of (due time, id) with lazy deletion: stale entries are skipped when popped. */
class DueHeap {
  private a: Array<{ at: number; id: string }> = [];
  get size(): number { return this.a.length; }
  peek(): { at: number; id: string } | undefined { return this.a[0]; }
  push(at: number, id: string): void {
    const a = this.a;
    a.push({ at, id });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].at <= a[i].at) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): { at: number; id: string } | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l].at < a[m].at) m = l;
        if (r < a.length && a[r].at < a[m].at) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** FIFO with O(1) shift (Array#shift moves every element; the ready list can hold tens of thousands). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number { return this.items.length - this.head; }
  peek(): T | undefined { return this.items[this.head]; }
  push(v: T): void { this.items.push(v); }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    return v;
  }
}

export class DeliveryQueue {
  private readonly spool: Spool;
  private readonly router: MxRouter;
  private readonly transports: Sender;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private settings: QueueSettings;
  private heap = new DueHeap();
  private ready = new Fifo<string>();
  private inFlight = new Set<string>();
  /** Content bytes the attempts in flight hold (a whole small message and the delivery thread's copy; a streamed one's read-ahead). */
  private inFlightBytes = 0;
  private hot = new Map<string, Buffer>();
  /** Messages whose blob failed its check while being sent: not streamed again (see content()). */
  private badBlobs = new Set<string>();
  private hotBytes = 0;
  private paused = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private idleWaiters: Array<() => void> = [];

  constructor(spool: Spool, router: MxRouter, transports: Sender, settings: QueueSettings, log: Logger, metrics: Metrics) {
    this.spool = spool;
    this.router = router;
    this.transports = transports;
    this.settings = settings;
    this.log = log;
    this.metrics = metrics;
    for (const m of spool.messages.values()) this.schedule(m.meta.id, m.meta.nextAttempt);
    this.updateGauge();
  }

  configure(settings: QueueSettings): void {
    this.settings = settings;
    this.pump();
  }

  /** Spools a new message durably and schedules it; resolves once it is on disk (then 250). */
  async accept(from: string, rcpts: string[], content: Buffer, extra: { id?: string; clientAddress?: string; bounce?: boolean } = {}): Promise<string> {
    const now = Date.now();
    const { id, ...rest } = extra;
    const meta: MessageMeta = {
      id: id ?? newMessageId(),
      from,
      rcpts: rcpts.map((address) => ({ address, status: 'pending' })),
      receivedAt: now,
      attempts: 0,
      nextAttempt: now,
      size: content.length,
      ...rest,
    };
    await this.spool.add(meta, content);
    if (this.hotBytes + content.length <= HOT_LIMIT_BYTES) {
      this.hot.set(meta.id, content);
      this.hotBytes += content.length;
    }
    this.updateGauge();
    this.schedule(meta.id, now);
    return meta.id;
  }

  /** A file in the spool for a large message's content, written while DATA arrives (see acceptBlob). */
  createBlob(id: string): Promise<BlobWriter> {
    return this.spool.createBlob(id);
  }

  /** Spools the envelope of a message whose content is a finished blob, and schedules it; resolves once durable (then 250). */
  async acceptBlob(from: string, rcpts: string[], blob: { length: number; crc: number }, extra: { id: string; clientAddress?: string }): Promise<string> {
    const now = Date.now();
    const meta: MessageMeta = {
      id: extra.id,
      from,
      rcpts: rcpts.map((address) => ({ address, status: 'pending' })),
      receivedAt: now,
      attempts: 0,
      nextAttempt: now,
      size: blob.length,
      ...(extra.clientAddress !== undefined ? { clientAddress: extra.clientAddress } : {}),
    };
    await this.spool.addBlob(meta, blob);
    this.updateGauge();
    this.schedule(meta.id, now);
    return meta.id;
  }

  // ---- queue API (ETRN, MAILQv2, drain) ----

  /**
   * Makes every queued message with an open recipient in the selected domain due now.
   * Returns how many messages it started (messages already being delivered are not counted).
   */
  flush(selector: DomainSelector): number {
    let n = 0;
    const now = Date.now();
    for (const m of this.spool.messages.values()) {
      if (this.inFlight.has(m.meta.id) || m.meta.held) continue;
      if (!m.meta.rcpts.some((r) => OPEN.has(r.status) && domainMatches(domainOf(r.address), selector))) continue;
      m.meta.nextAttempt = now;
      this.ready.push(m.meta.id);
      n++;
    }
    this.log.info({ event: 'flush', domain: selector.domain, subdomains: selector.subdomains, messages: n }, 'queue flush');
    this.pump();
    return n;
  }

  /** Every queued message (open recipients only). */
  list(): QueuedMessageInfo[] {
    return [...this.spool.messages.values()].map(({ meta }) => this.info(meta));
  }

  get(id: string): QueuedMessageInfo | undefined {
    const m = this.spool.messages.get(id);
    return m ? this.info(m.meta) : undefined;
  }

  private info(meta: MessageMeta): QueuedMessageInfo {
    const open = meta.rcpts.filter((r) => OPEN.has(r.status));
    return {
      id: meta.id, sender: meta.from, recipients: open.map((r) => r.address), size: meta.size,
      receivedAt: meta.receivedAt, attempts: meta.attempts, nextAttempt: meta.nextAttempt,
      lastError: open.find((r) => r.error)?.error, inFlight: this.inFlight.has(meta.id), held: meta.held === true,
    };
  }

  /** The raw message as spooled (with our Received header). */
  readContent(id: string): Promise<Buffer> {
    const hot = this.hot.get(id);
    return hot ? Promise.resolve(hot) : this.spool.readContent(id);
  }

  /**
   * Marks recipients done (say, a peer accepted them on a hand-off); removes the message
   * when nothing is left. Refuses while the message is being delivered.
   */
  async markRecipientsDone(id: string, recipients: string[], note = 'handed off'): Promise<void> {
    const m = this.spool.messages.get(id);
    if (!m) return;
    if (this.inFlight.has(id)) throw new Error(`message ${id} is being delivered`);
    const want = new Set(recipients.map((r) => r.toLowerCase()));
    for (const r of m.meta.rcpts) {
      if (OPEN.has(r.status) && want.has(r.address.toLowerCase())) { r.status = 'delivered'; r.error = note; }
    }
    await this.finishOrUpdate(m.meta);
  }

  /**
   * Finishes messages that have no open recipient left but are still queued (a DSN that
   * could not be queued before): bounces and removes them now. For a drain, whose paused
   * queue makes no attempts; each waits for its retry time. Returns how many still wait.
   */
  async retryFinished(): Promise<number> {
    let waiting = 0;
    for (const { meta } of [...this.spool.messages.values()]) {
      if (this.inFlight.has(meta.id) || meta.rcpts.some((r) => OPEN.has(r.status))) continue;
      if (meta.nextAttempt > Date.now()) { waiting++; continue; }
      await this.finishOrUpdate(meta);
      if (this.spool.messages.has(meta.id)) waiting++;
    }
    return waiting;
  }

  /** Stops starting new attempts (running ones finish). */
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; this.pump(); }
  get isPaused(): boolean { return this.paused; }
  get inFlightCount(): number { return this.inFlight.size; }

  /** Resolves when no attempt is running. */
  waitIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Total, per domain (open recipients), oldest — for GET /queue. */
  summary(): { total: number; recipients: number; domains: Record<string, number>; oldest: string | null; deferred: number; held: number } {
    const domains: Record<string, number> = {};
    let oldest = Infinity;
    let recipients = 0;
    let deferred = 0;
    let held = 0;
    for (const { meta } of this.spool.messages.values()) {
      oldest = Math.min(oldest, meta.receivedAt);
      if (meta.held) held++;
      let isDeferred = false;
      for (const r of meta.rcpts) {
        if (!OPEN.has(r.status)) continue;
        recipients++;
        if (r.status === 'deferred') isDeferred = true;
        const d = domainOf(r.address);
        domains[d] = (domains[d] ?? 0) + 1;
      }
      if (isDeferred) deferred++;
    }
    return { total: this.spool.messages.size, recipients, domains, oldest: oldest === Infinity ? null : new Date(oldest).toISOString(), deferred, held };
  }

  // ---- admin operations (hold, release, retry, delete; issue 14) ----

  /**
   * Puts a message on hold or releases it. The hold takes effect at once in memory (no new
   * attempt starts) and is reported only once its record is durable; if the write fails the
   * change is undone and the error thrown. A running attempt finishes (what it delivers is
   * delivered). Release makes the message due now.
   */
  async setHeld(id: string, held: boolean): Promise<QueuedMessageInfo> {
    const m = this.spool.messages.get(id);
    if (!m) throw new QueueOperationError('not-found', `message ${id} is not in the queue`);
    if ((m.meta.held === true) === held) return this.info(m.meta);
    const before = { held: m.meta.held, nextAttempt: m.meta.nextAttempt };
    m.meta.held = held;
    if (!held) m.meta.nextAttempt = Date.now();
    try {
      await this.spool.commitUpdate(id);
    } catch (err) {
      m.meta.held = before.held;
      m.meta.nextAttempt = before.nextAttempt;
      throw err;
    }
    this.log.info({ event: held ? 'hold' : 'release', id }, held ? 'message put on hold' : 'message released');
    if (!held) this.schedule(id, m.meta.nextAttempt);
    return this.info(m.meta);
  }

  /** Makes one message due now (postqueue -i). Refused for a held message: release it. */
  retryNow(id: string): QueuedMessageInfo {
    const m = this.spool.messages.get(id);
    if (!m) throw new QueueOperationError('not-found', `message ${id} is not in the queue`);
    if (m.meta.held) throw new QueueOperationError('held', `message ${id} is on hold: release it to deliver it`);
    if (!this.inFlight.has(id)) {
      m.meta.nextAttempt = Date.now();
      this.ready.push(id);
      this.pump();
    }
    return this.info(m.meta);
  }

  /**
   * Deletes a message (postsuper -d). With `dsn`, its open recipients fail with `reason` and
   * the sender gets a DSN (queued durably before the message goes); without, it goes
   * silently. Refused while an attempt runs (it could be delivering right now).
   */
  async delete(id: string, options: { dsn: boolean; reason?: string }): Promise<QueuedMessageInfo> {
    const m = this.spool.messages.get(id);
    if (!m) throw new QueueOperationError('not-found', `message ${id} is not in the queue`);
    if (this.inFlight.has(id)) throw new QueueOperationError('in-flight', `message ${id} is being delivered right now; try again`);
    const info = this.info(m.meta);
    const reason = options.reason ?? '550 5.0.0 message deleted from the queue by the administrator';
    this.log.info({ event: 'delete', id, dsn: options.dsn, from: m.meta.from, recipients: info.recipients }, 'message deleted by the administrator');
    if (options.dsn) {
      for (const r of m.meta.rcpts) if (OPEN.has(r.status)) { r.status = 'failed'; r.error = reason; }
      await this.finishOrUpdate(m.meta);
    } else {
      this.dropHot(id);
      this.badBlobs.delete(id);
      await this.spool.remove(id);
      this.updateGauge();
    }
    return info;
  }

  // ---- scheduling ----

  private schedule(id: string, at: number): void {
    if (at <= Date.now()) this.ready.push(id);
    else this.heap.push(at, id);
    this.pump();
  }

  private armTimer(): void {
    const next = this.heap.peek();
    if (!next) return;
    if (this.timer && this.timerAt <= next.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next.at;
    this.timer = setTimeout(() => { this.timer = null; this.timerAt = Infinity; this.pump(); }, Math.max(0, next.at - Date.now()));
    this.timer.unref();
  }

  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (let top = this.heap.peek(); top && top.at <= now; top = this.heap.peek()) {
      this.heap.pop();
      const m = this.spool.messages.get(top.id);
      if (m && m.meta.nextAttempt === top.at) this.ready.push(top.id);
    }
    while (!this.paused && this.ready.length > 0 && this.inFlight.size < this.settings.concurrency) {
      const id = this.ready.peek()!;
      const m = this.spool.messages.get(id);
      if (!m || m.meta.held || this.inFlight.has(id) || m.meta.nextAttempt > Date.now()) { this.ready.shift(); continue; }
      // in order: a message that does not fit waits at the head until attempts in flight finish
      const size = deliveryHeldBytes(m.meta.size, m.meta.blob !== undefined && !this.badBlobs.has(id), BLOB_STREAM_HELD_BYTES);
      if (!fitsContentBudget(this.inFlight.size, this.inFlightBytes, size, this.settings.contentBudgetBytes ?? DEFAULT_DELIVERY_CONTENT_BUDGET)) break;
      this.ready.shift();
      this.inFlight.add(id);
      this.inFlightBytes += size;
      void this.attempt(m.meta).finally(() => {
        this.inFlight.delete(id);
        this.inFlightBytes -= size;
        if (this.inFlight.size === 0) for (const w of this.idleWaiters.splice(0)) w();
        this.pump();
      });
    }
    this.armTimer();
  }

  private dropHot(id: string): void {
    const b = this.hot.get(id);
    if (b) { this.hot.delete(id); this.hotBytes -= b.length; }
  }

  /**
   * What an attempt sends: a blob-backed message as its file, which the delivery thread
   * streams once a destination accepts the envelope (nothing is read for a host that is
   * down); any other message as its bytes.
   */
  private async content(id: string): Promise<MessageContent> {
    const blob = this.spool.blobFile(id);
    // a blob that failed its check goes through the spool's whole-file check first (it fails
    // again before any connection, or passes once the file is restored)
    if (blob && !this.badBlobs.has(id)) return { kind: 'blob', ...blob };
    return { kind: 'bytes', raw: await this.readContent(id) };
  }

  /** The start of a message, enough for its header section (a DSN quotes it). */
  private async readHead(id: string, limit = 64 * 1024): Promise<Buffer> {
    const blob = this.spool.blobFile(id);
    if (!blob) return this.readContent(id);
    const fh = await open(blob.path, 'r');
    try {
      const buf = Buffer.alloc(Math.min(limit, blob.length));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** One attempt for every open recipient of a message, grouped by domain. */
  private async attempt(meta: MessageMeta): Promise<void> {
    let content: MessageContent;
    try {
      content = await this.content(meta.id);
    } catch (err) {
      this.log.error({ event: 'delivery', id: meta.id, err: (err as Error).message }, 'cannot read spooled message');
      meta.nextAttempt = Date.now() + backoffMs(meta.attempts + 1, this.settings.retryIntervalMs, this.settings.maxRetryIntervalMs);
      this.schedule(meta.id, meta.nextAttempt);
      return;
    }
    const byDomain = new Map<string, RecipientState[]>();
    for (const r of meta.rcpts) {
      if (!OPEN.has(r.status)) continue;
      const d = domainOf(r.address);
      let list = byDomain.get(d);
      if (!list) byDomain.set(d, (list = []));
      list.push(r);
    }
    await Promise.all([...byDomain].map(([domain, rcpts]) => this.attemptDomain(meta, domain, rcpts, content)));
    this.dropHot(meta.id);
    meta.attempts++;
    const open = meta.rcpts.filter((r) => OPEN.has(r.status));
    if (open.length > 0) {
      if (Date.now() - meta.receivedAt >= this.settings.queueLifetimeMs) {
        for (const r of open) { r.status = 'failed'; r.error = `queue lifetime expired; last error: ${r.error ?? 'none'}`; }
        this.metrics.bounced.inc(open.length);
      } else {
        meta.nextAttempt = Date.now() + backoffMs(meta.attempts, this.settings.retryIntervalMs, this.settings.maxRetryIntervalMs);
      }
    }
    await this.finishOrUpdate(meta, content.kind === 'bytes' ? Buffer.from(content.raw.buffer, content.raw.byteOffset, content.raw.byteLength) : undefined);
  }

  /** Removes a finished message (bouncing its failures first) or records its state and reschedules. */
  private async finishOrUpdate(meta: MessageMeta, content?: Buffer): Promise<void> {
    const open = meta.rcpts.some((r) => OPEN.has(r.status));
    if (open) {
      await this.spool.update(meta.id);
      this.schedule(meta.id, meta.nextAttempt);
      return;
    }
    const failed = meta.rcpts.filter((r) => r.status === 'failed');
    if (failed.length > 0 && !(await this.bounce(meta, failed, content))) {
      // the DSN is not on disk: the original stays queued and its bounce is tried again later
      meta.nextAttempt = Date.now() + backoffMs(meta.attempts + 1, this.settings.retryIntervalMs, this.settings.maxRetryIntervalMs);
      await this.spool.update(meta.id);
      this.schedule(meta.id, meta.nextAttempt);
      return;
    }
    this.dropHot(meta.id);
    this.badBlobs.delete(meta.id);
    await this.spool.remove(meta.id);
    this.updateGauge();
  }

  /** Queues the DSN for failed recipients; false when it could not be queued (the original must stay). */
  private async bounce(meta: MessageMeta, failed: RecipientState[], content?: Buffer): Promise<boolean> {
    if (meta.from === '' || meta.bounce) {
      this.log.warn({ event: 'bounce', id: meta.id, skipped: meta.from === '' ? 'null sender' : 'bounce of a bounce', recipients: failed.map((r) => r.address) }, 'no DSN sent');
      return true;
    }
    const body = content ?? await this.readHead(meta.id).catch(() => Buffer.alloc(0));
    const report: FailedRecipient[] = failed.map((r) => ({
      address: r.address,
      status: statusFromDiagnostic(r.error ?? '', true),
      diagnostic: r.error ?? 'failed',
    }));
    const dsn = buildDsn({
      reportingMta: this.settings.hostname, to: meta.from, originalId: meta.id,
      arrivalDate: new Date(meta.receivedAt), failed: report, originalHeaders: headerSection(body),
    });
    try {
      // durable before the original goes away
      const id = await this.accept('', [meta.from], dsn, { bounce: true });
      this.log.info({ event: 'bounce', id: meta.id, dsn: id, to: meta.from, recipients: failed.map((r) => r.address) }, 'DSN queued');
      return true;
    } catch (err) {
      this.log.error({ event: 'bounce', id: meta.id, err: (err as Error).message }, 'could not queue DSN, keeping the message to bounce it later');
      return false;
    }
  }

  private async attemptDomain(meta: MessageMeta, domain: string, rcpts: RecipientState[], content: MessageContent): Promise<void> {
    const started = process.hrtime.bigint();
    const route = await this.router.route(domain);
    const logBase = { event: 'delivery', id: meta.id, from: meta.from, domain, recipients: rcpts.map((r) => r.address), attempt: meta.attempts + 1 };
    if (route.kind !== 'deliver') {
      const permanent = route.kind === 'fail';
      for (const r of rcpts) { r.status = permanent ? 'failed' : 'deferred'; r.error = route.reason; }
      (permanent ? this.metrics.bounced : this.metrics.deferred).inc(rcpts.length);
      this.log.info({ ...logBase, result: permanent ? 'failed' : 'deferred', reason: route.reason }, 'delivery attempt');
      return;
    }
    let lastError = 'no MX host tried';
    for (const host of route.hosts) {
      for (const address of host.addresses) {
        const todo = rcpts.filter((r) => OPEN.has(r.status));
        if (todo.length === 0) return;
        try {
          const res = await this.transports.send(address, this.settings.smtpPort, host.exchange, meta.from, todo.map((r) => r.address), content, `<${meta.id}@${this.settings.hostname}>`, domain);
          const rejected = new Map(res.rejected.map((x) => [x.address.toLowerCase(), x]));
          for (const r of todo) {
            const rej = rejected.get(r.address.toLowerCase());
            if (!rej) { r.status = 'delivered'; r.error = res.response; continue; }
            r.status = rej.code >= 500 ? 'failed' : 'deferred';
            r.error = rej.response;
          }
          const delivered = todo.filter((r) => r.status === 'delivered').length;
          const failed = todo.filter((r) => r.status === 'failed').length;
          this.metrics.delivered.inc(delivered);
          if (failed) this.metrics.bounced.inc(failed);
          if (todo.length - delivered - failed) this.metrics.deferred.inc(todo.length - delivered - failed);
          this.metrics.deliveryDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
          this.log.info({ ...logBase, result: failed ? 'partial' : delivered === todo.length ? 'delivered' : 'partial', mx: host.exchange, ip: address, response: res.response, rejected: res.rejected }, 'delivery attempt');
          return;
        } catch (err) {
          const e = err as { code?: string; originalCode?: string; responseCode?: number; response?: string; message?: string; rejectedErrors?: Array<{ recipient: string; responseCode?: number; response?: string }> };
          if (e.originalCode === 'EBLOB') {
            // our copy failed its check while it was sent (the DATA was cut off, never ended):
            // no other host can be given it; the spool's own check quarantines the blob
            lastError = `local error: ${e.message}`;
            this.log.error({ ...logBase, result: 'deferred', mx: host.exchange, ip: address, err: e.message }, 'spooled message failed its check while being sent');
            this.badBlobs.add(meta.id);
            void this.spool.readContent(meta.id).catch(() => {});
            for (const r of todo) { r.status = 'deferred'; r.error = lastError; }
            this.metrics.deferred.inc(todo.length);
            return;
          }
          const f = classifySendError(e);
          lastError = `${host.exchange}[${address}]: ${f.message}`;
          if (e.rejectedErrors && e.rejectedErrors.length > 0 && e.code === 'EENVELOPE' && e.rejectedErrors.length === todo.length) {
            // every recipient refused at RCPT: each keeps its own verdict
            for (const rej of e.rejectedErrors) {
              const r = todo.find((x) => x.address.toLowerCase() === String(rej.recipient).toLowerCase());
              if (!r) continue;
              r.status = (rej.responseCode ?? 450) >= 500 ? 'failed' : 'deferred';
              r.error = `${host.exchange}[${address}]: ${(rej.response ?? 'rejected').trim()}`;
            }
            const failed = todo.filter((r) => r.status === 'failed').length;
            if (failed) this.metrics.bounced.inc(failed);
            if (todo.length - failed) this.metrics.deferred.inc(todo.length - failed);
            this.log.info({ ...logBase, result: failed === todo.length ? 'failed' : 'deferred', mx: host.exchange, ip: address, reason: lastError }, 'delivery attempt');
            return;
          }
          if (f.permanent) {
            for (const r of todo) { r.status = 'failed'; r.error = lastError; }
            this.metrics.bounced.inc(todo.length);
            this.log.info({ ...logBase, result: 'failed', mx: host.exchange, ip: address, reason: lastError }, 'delivery attempt');
            return;
          }
          this.log.info({ ...logBase, result: 'retry-next-host', mx: host.exchange, ip: address, reason: lastError }, 'delivery attempt');
        }
      }
    }
    const todo = rcpts.filter((r) => OPEN.has(r.status));
    for (const r of todo) { r.status = 'deferred'; r.error = lastError; }
    this.metrics.deferred.inc(todo.length);
    this.metrics.deliveryDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.log.info({ ...logBase, result: 'deferred', reason: lastError }, 'delivery attempt');
  }

  private updateGauge(): void {
    this.metrics.queueMessages.set(this.spool.messages.size);
  }

  /** Stops scheduling; running attempts finish on their own. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
