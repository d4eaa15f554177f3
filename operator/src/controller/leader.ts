// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
// expiry is judged by when this process last saw the record change (no clock-skew trust),
// the leader renews every retry period and gives up leadership when it cannot renew within
// the renew deadline; on stop it releases the Lease so a successor takes over at once.
//
// Fencing: every Lease call carries a timeout (an AbortSignal), so a hung call cannot stall the
// loop; and leadership is a deadline, not a flag. `stillLeading()` is true only until
// renewDeadline after the last successful renewal was *sent*, and a timer steps down at that
// moment even while a renew call hangs. Another replica takes over at the earliest
// leaseDuration after it saw that renewal, which it cannot have seen before it was sent, so
// writes gated on stillLeading() stop strictly before a successor can start
// (leaseDuration - renewDeadline is the margin; durations are measured on the monotonic clock).
import { performance } from 'node:perf_hooks';
import { Observable, V1MicroTime, type CoordinationV1Api, type ObservableMiddleware, type RequestContext, type ResponseContext, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaderElectionOptions {
  coordination: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

const codeOf = (err: unknown): number | undefined => (err as { code?: number }).code;
const monotonic = (): number => performance.now();

/** Request options that abort the call after `ms` (the generated client passes the signal to fetch). */
export function timeoutOptions(ms: number) {
  const middleware: ObservableMiddleware = {
    pre: (ctx: RequestContext) => { ctx.setSignal(AbortSignal.timeout(Math.max(1, Math.ceil(ms)))); return new Observable(Promise.resolve(ctx)); },
    post: (res: ResponseContext) => new Observable(Promise.resolve(res)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' as const };
}

/**
 * The renewal of a Lease this process holds, written over `last` (what its own last write
 * returned, resourceVersion included); undefined when `last` is not held by `identity`. Pure.
 */
export function renewedLease(last: V1Lease | undefined, identity: string, now: V1MicroTime, leaseDurationSeconds: number): V1Lease | undefined {
  if (!last?.metadata?.resourceVersion || last.spec?.holderIdentity !== identity) return undefined;
  return { ...last, spec: { ...last.spec, leaseDurationSeconds, renewTime: now } };
}

export class LeaderElector {
  private readonly o: Required<LeaderElectionOptions>;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private observedRecord = '';
  private observedAt = 0;
  /** Monotonic time at which the last successful acquire/renew was sent. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  /** The Lease as our last successful write left it (the API server's answer), for the fast renew. */
  private ownLease: V1Lease | undefined;

  constructor(options: LeaderElectionOptions) {
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
    if (!(this.o.renewDeadlineMs < this.o.leaseDurationMs)) throw new Error(`leader election: renew deadline (${this.o.renewDeadlineMs} ms) must be shorter than the lease duration (${this.o.leaseDurationMs} ms)`);
    if (!(this.o.retryPeriodMs < this.o.renewDeadlineMs)) throw new Error(`leader election: retry period (${this.o.retryPeriodMs} ms) must be shorter than the renew deadline (${this.o.renewDeadlineMs} ms)`);
  }

  get isLeader(): boolean { return this.stillLeading(); }

  /** The write fence: true only while the last renewal is younger than the renew deadline. */
  stillLeading(): boolean {
    return this.leading && !this.stopped && monotonic() - this.renewedAt < this.o.renewDeadlineMs;
  }

  start(): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      try {
        await this.tryAcquireOrRenew();
      } catch (err) {
        this.o.log.warn({ err: String(err) }, 'leader election: lease update failed');
      }
      this.checkDeadline();
      if (!this.stopped) this.timer = setTimeout(tick, this.o.retryPeriodMs);
    };
    void tick();
  }

  private checkDeadline(): void {
    if (this.leading && monotonic() - this.renewedAt >= this.o.renewDeadlineMs) {
      this.o.log.error({ renewDeadlineMs: this.o.renewDeadlineMs }, 'leader election: could not renew the lease in time; stepping down');
      this.leading = false;
      if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
      this.o.onStoppedLeading();
    }
  }

  /** How long one Lease call may take: a leader never waits past its renew deadline. */
  private callTimeoutMs(): number {
    if (!this.leading) return this.o.renewDeadlineMs;
    return Math.max(50, Math.ceil(Math.min(this.o.renewDeadlineMs, this.renewedAt + this.o.renewDeadlineMs - monotonic())));
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { coordination, namespace, name, identity } = this.o;
    const sentAt = monotonic();
    const now = new V1MicroTime(Date.now());
    const leaseDurationSeconds = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    // Fast path (client-go's too): a leader renews with one write on top of the Lease its last
    // write returned, no read first. Under load every API call can take seconds; two calls per
    // renewal halve the renewals that fit in the renew deadline. If someone else wrote the Lease
    // since, the resourceVersion no longer matches (409) and the slow path reads it.
    const own = this.leading ? renewedLease(this.ownLease, identity, now, leaseDurationSeconds) : undefined;
    if (own) {
      try {
        this.ownLease = await coordination.replaceNamespacedLease({ name, namespace, body: own }, timeoutOptions(this.callTimeoutMs()));
        this.becameLeader(sentAt);
        return;
      } catch (err) {
        this.ownLease = undefined;
        if (codeOf(err) !== 409) throw err;
      }
    }
    let lease: V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace }, timeoutOptions(this.callTimeoutMs()));
    } catch (err) {
      if (codeOf(err) !== 404) throw err;
      this.ownLease = await coordination.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
      }, timeoutOptions(this.callTimeoutMs()));
      this.becameLeader(sentAt);
      return;
    }
    const spec = lease.spec ?? {};
    const record = `${spec.holderIdentity ?? ''}|${String(spec.renewTime ?? '')}|${spec.leaseTransitions ?? 0}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = monotonic();
    }
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const held = holder !== '' && holder !== identity && monotonic() - this.observedAt < durationMs;
    if (held) {
      this.ownLease = undefined;
      if (this.leading) { this.leading = false; this.o.onStoppedLeading(); }
      return;
    }
    const takeover = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      ...(takeover ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    // replace carries the resourceVersion: a concurrent candidate's write makes ours fail (409).
    this.ownLease = await coordination.replaceNamespacedLease({ name, namespace, body: lease }, timeoutOptions(this.callTimeoutMs()));
    this.becameLeader(sentAt);
  }

  /** `sentAt`: when the successful call sequence started (conservative: before the write landed). */
  private becameLeader(sentAt: number): void {
    if (this.stopped) return;
    this.renewedAt = sentAt;
    this.observedRecord = '';
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    // Step down at the deadline even if the next renew call is still hanging.
    this.deadlineTimer = setTimeout(() => this.checkDeadline(), Math.ceil(Math.max(0, sentAt + this.o.renewDeadlineMs - monotonic())) + 1);
    if (!this.leading) {
      this.leading = true;
      this.o.log.info({ identity: this.o.identity, lease: `${this.o.namespace}/${this.o.name}` }, 'leader election: became leader');
      this.o.onStartedLeading();
    }
  }

  /** Stops campaigning; a leader releases the Lease (holder cleared, 1 s duration). */
  async stop(): Promise<void> {
    const wasLeading = this.stillLeading();
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.leading = false;
    if (!wasLeading) return;
    try {
      const lease = await this.o.coordination.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace }, timeoutOptions(this.o.renewDeadlineMs));
      if (lease.spec?.holderIdentity === this.o.identity) {
        const now = new V1MicroTime(Date.now());
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now };
        await this.o.coordination.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease }, timeoutOptions(this.o.renewDeadlineMs));
        this.o.log.info('leader election: lease released');
      }
    } catch (err) {
      this.o.log.warn({ err: String(err) }, 'leader election: could not release the lease');
    }
  }
}
