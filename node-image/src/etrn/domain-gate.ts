// Cluster-wide ETRN limits, decided per node (pure; the clock is passed in). Every ETRN
// that fans out reaches every node as a relayed ETRN, so a node that counts the relayed
// ones beside its own SMTP ones sees the whole cluster's ETRNs for a domain:
// - rate: at most `limit` fan-outs per domain in `seconds` (SMTP ETRNs beyond it get 458);
// - a node that got a relayed ETRN for a domain within `relayedWindow` seconds does not fan
//   out for it again (the peer's fan-out reached every node already): it flushes locally.
// (Concurrent ETRNs for one domain on one node share its fan-out: EtrnService's in-flight map.)

export interface EtrnDomainLimits {
  /** Fan-outs per domain per window; 0 = no limit. */
  limit: number;
  seconds: number;
  relayedWindowSeconds: number;
}

export type GateDecision =
  | { kind: 'fan-out' }
  | { kind: 'local-only'; relayedSecondsAgo: number }
  | { kind: 'rate-limited'; retryAfterSeconds: number };

export class EtrnDomainGate {
  readonly #events = new Map<string, number[]>();
  readonly #relayedAt = new Map<string, number>();
  readonly #maxDomains: number;

  constructor(maxDomains = 10_000) {
    this.#maxDomains = maxDomains;
  }

  /** A relayed ETRN for `domain` arrived (MAILQv2): it counts toward the rate. */
  relayed(domain: string, now: number, limits: EtrnDomainLimits): void {
    const d = domain.toLowerCase();
    this.#relayedAt.delete(d);
    this.#relayedAt.set(d, now);
    this.#record(d, now, limits);
    this.#trim();
  }

  /** What an SMTP ETRN for `domain` may do now; a fan-out or a local flush is counted. */
  decide(domain: string, now: number, limits: EtrnDomainLimits): GateDecision {
    const d = domain.toLowerCase();
    // the rate first: past it no SMTP ETRN for the domain is served, local or not
    if (limits.limit > 0) {
      const recent = this.#recent(d, now, limits);
      if (recent.length >= limits.limit) {
        const retry = Math.max(1, Math.ceil((recent[0] + limits.seconds * 1000 - now) / 1000));
        return { kind: 'rate-limited', retryAfterSeconds: retry };
      }
    }
    const at = this.#relayedAt.get(d);
    if (at !== undefined && now >= at && now - at < limits.relayedWindowSeconds * 1000) {
      return { kind: 'local-only', relayedSecondsAgo: Math.round((now - at) / 100) / 10 };
    }
    this.#record(d, now, limits);
    this.#trim();
    return { kind: 'fan-out' };
  }

  #recent(d: string, now: number, limits: EtrnDomainLimits): number[] {
    const list = (this.#events.get(d) ?? []).filter((t) => t <= now && now - t < limits.seconds * 1000);
    this.#events.set(d, list);
    return list;
  }

  #record(d: string, now: number, limits: EtrnDomainLimits): void {
    const list = this.#recent(d, now, limits);
    list.push(now);
    this.#events.delete(d);
    this.#events.set(d, list);
  }

  #trim(): void {
    while (this.#events.size > this.#maxDomains) this.#events.delete(this.#events.keys().next().value as string);
    while (this.#relayedAt.size > this.#maxDomains) this.#relayedAt.delete(this.#relayedAt.keys().next().value as string);
  }
}
