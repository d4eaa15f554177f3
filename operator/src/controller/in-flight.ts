// A bound on the requests the workers have in flight at once, across all reconciles. A reconcile
// sends what has no order among it together (reconciler.ts); eight workers doing so at a cold
// start of hundreds of clusters put some 180 requests in flight at once, whose parsed answers,
// waiting on the slowest, lived long enough to be promoted and grew the old generation (bench:scale
// at 300 clusters: peak RSS 327 MB against 252 MB sending one at a time). Past the bound a request
// waits for a slot, in order.
export class InFlightLimit {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  readonly limit: number;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`in-flight limit must be a whole number >= 1, got ${limit}`);
    this.limit = limit;
  }

  get inFlight(): number { return this.active; }
  get queued(): number { return this.waiting.length; }

  /** Runs `fn` once a slot is free; the slot is released when it settles. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next in line
      else this.active--;
    }
  }
}
