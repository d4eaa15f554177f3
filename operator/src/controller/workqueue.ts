// A work queue keyed by namespace/name, after client-go's: a key waiting in the queue is
// not added twice (coalescing), a key being processed is never handed to a second worker —
// if it changes meanwhile it is queued again once the first run is done — and failures are
// retried with per-key exponential backoff.
// Two lanes: a change to a cluster already reconciled once (a pod turned Ready, a drain
// answered) goes ahead of clusters not reconciled yet, so that at a cold start of 1,000
// clusters their status follows their pods instead of waiting behind every first-time create
// (bench:scale: 9 of 1,000 Ready in status with 426 pods Ready). One key in every
// `fairEvery` is still taken from the other lane, so first-time creates never starve.

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  onDepth?: (depth: number) => void;
  /** Of this many keys handed out in a row while both lanes wait, one comes from the normal lane (default 4). */
  fairEvery?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly urgent: string[] = [];
  private readonly queued = new Set<string>();
  private readonly dirtyUrgent = new Set<string>();
  private readonly fairEvery: number;
  private urgentInARow = 0;
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly onDepth: (depth: number) => void;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.onDepth = options.onDepth ?? (() => {});
    this.fairEvery = Math.max(2, options.fairEvery ?? 4);
  }

  get depth(): number { return this.queue.length + this.urgent.length; }

  /** Queues `key`; `urgent`: in the lane served first (a key waiting in the other lane moves up). */
  add(key: string, urgent = false): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) { this.dirty.add(key); if (urgent) this.dirtyUrgent.add(key); return; }
    if (this.queued.has(key)) {
      const i = urgent ? this.queue.indexOf(key) : -1;
      if (i >= 0) { this.queue.splice(i, 1); this.urgent.push(key); }
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) { this.processing.add(key); waiter(key); return; }
    this.queued.add(key);
    (urgent ? this.urgent : this.queue).push(key);
    this.onDepth(this.depth);
  }

  /** The next key by lane: urgent first, but never more than fairEvery - 1 in a row while normal ones wait. */
  private next(): string | undefined {
    const fairTurn = this.urgentInARow >= this.fairEvery - 1 && this.queue.length > 0;
    if (this.urgent.length > 0 && !fairTurn) { this.urgentInARow++; return this.urgent.shift(); }
    this.urgentInARow = 0;
    return this.queue.shift() ?? this.urgent.shift();
  }

  /** Adds the key after `ms`; an earlier pending delayed add for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) { this.add(key); return; }
    const existing = this.timers.get(key) as (NodeJS.Timeout & { dueAt?: number }) | undefined;
    const dueAt = Date.now() + ms;
    if (existing && (existing.dueAt ?? 0) <= dueAt) return;
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => { this.timers.delete(key); this.add(key); }, ms) as NodeJS.Timeout & { dueAt?: number };
    timer.dueAt = dueAt;
    timer.unref();
    this.timers.set(key, timer);
  }

  /** Re-adds a failed key after its backoff: base * 2^(failures-1), capped. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (n - 1));
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure count (after a successful reconcile). */
  forget(key: string): void { this.failures.delete(key); }

  failuresOf(key: string): number { return this.failures.get(key) ?? 0; }

  /** The next key to process; undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.next();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      this.onDepth(this.depth);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key processed; it is queued again if it changed meanwhile. */
  done(key: string): void {
    this.processing.delete(key);
    const urgent = this.dirtyUrgent.delete(key);
    if (this.dirty.delete(key)) this.add(key, urgent);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
