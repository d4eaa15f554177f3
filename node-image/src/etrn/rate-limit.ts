// Per-client token bucket for ETRN: every ETRN makes the whole cluster scan its queue, so a
// client may not repeat it faster than the bucket refills. The clock is passed in.

export interface TokenBucketOptions {
  /** Most ETRNs a client may send at once. */
  burst: number;
  /** Seconds to regain one token. */
  refillSeconds: number;
  /** Most clients remembered; the least recently seen are forgotten first. */
  maxClients?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBucketLimiter {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #maxClients: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: TokenBucketOptions) {
    if (!(options.burst >= 1) || !(options.refillSeconds > 0)) {
      throw new Error(`ETRN rate limit needs burst >= 1 and refillSeconds > 0, got ${JSON.stringify(options)}`);
    }
    this.#burst = options.burst;
    this.#refillMs = options.refillSeconds * 1000;
    this.#maxClients = options.maxClients ?? 10000;
  }

  /** Takes one token for `client`. Returns 0 when allowed, else the seconds until the next token. */
  take(client: string, nowMs: number): number {
    const bucket = this.#buckets.get(client) ?? { tokens: this.#burst, at: nowMs };
    const elapsed = Math.max(0, nowMs - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed / this.#refillMs);
    bucket.at = nowMs;
    // re-insert: Map order is then least recently seen first
    this.#buckets.delete(client);
    this.#buckets.set(client, bucket);
    while (this.#buckets.size > this.#maxClients) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * this.#refillMs) / 1000);
  }
}
