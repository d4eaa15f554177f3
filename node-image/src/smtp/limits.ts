// Per-client counters in fixed windows, as Postfix's anvil counts (anvil_rate_time_unit):
// the window starts with a client's first event and resets when it has passed. Pure: the
// clock is passed in. Used for the connection rate and failed AUTH attempts.

export class WindowCounter {
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #entries = new Map<string, { start: number; count: number }>();

  constructor(windowSeconds: number, maxKeys = 100_000) {
    this.#windowMs = windowSeconds * 1000;
    this.#maxKeys = maxKeys;
  }

  /** Counts one event for `key`; returns the count in the current window, this one included. */
  hit(key: string, now: number): number {
    const e = this.#current(key, now) ?? { start: now, count: 0 };
    e.count++;
    this.#entries.delete(key);
    this.#entries.set(key, e);
    while (this.#entries.size > this.#maxKeys) this.#entries.delete(this.#entries.keys().next().value as string);
    return e.count;
  }

  /** The count in the current window (0 when none or expired). */
  count(key: string, now: number): number {
    return this.#current(key, now)?.count ?? 0;
  }

  /** Forgets a key (a successful login clears its failures). */
  clear(key: string): void {
    this.#entries.delete(key);
  }

  #current(key: string, now: number): { start: number; count: number } | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (now - e.start >= this.#windowMs || now < e.start) { this.#entries.delete(key); return undefined; }
    return e;
  }
}
