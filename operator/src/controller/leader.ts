// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
// expiry is judged by when this process last saw the record change (no clock-skew trust),
// the leader renews every retry period and gives up leadership when it cannot renew within
// the renew deadline; on stop it releases the Lease so a successor takes over at once.
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
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

export class LeaderElector {
  private readonly o: Required<LeaderElectionOptions>;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private observedRecord = '';
  private observedAt = 0;
  private lastRenewal = 0;
  private lease: V1Lease | undefined;

  constructor(options: LeaderElectionOptions) {
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
  }

  get isLeader(): boolean { return this.leading; }

  start(): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      try {
        await this.tryAcquireOrRenew();
      } catch (err) {
        this.o.log.warn({ err: String(err) }, 'leader election: lease update failed');
      }
      if (this.leading && Date.now() - this.lastRenewal > this.o.renewDeadlineMs) {
        this.o.log.error('leader election: could not renew the lease in time; stepping down');
        this.leading = false;
        this.o.onStoppedLeading();
      }
      if (!this.stopped) this.timer = setTimeout(tick, this.o.retryPeriodMs);
    };
    void tick();
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { coordination, namespace, name, identity } = this.o;
    const now = new V1MicroTime(Date.now());
    const leaseDurationSeconds = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let lease: V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (codeOf(err) !== 404) throw err;
      this.lease = await coordination.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
      });
      this.becameLeader();
      return;
    }
    const spec = lease.spec ?? {};
    const record = `${spec.holderIdentity ?? ''}|${String(spec.renewTime ?? '')}|${spec.leaseTransitions ?? 0}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const held = holder !== '' && holder !== identity && Date.now() - this.observedAt < durationMs;
    if (held) {
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
    this.lease = await coordination.replaceNamespacedLease({ name, namespace, body: lease });
    this.becameLeader();
  }

  private becameLeader(): void {
    this.lastRenewal = Date.now();
    this.observedRecord = '';
    if (!this.leading) {
      this.leading = true;
      this.o.log.info({ identity: this.o.identity, lease: `${this.o.namespace}/${this.o.name}` }, 'leader election: became leader');
      this.o.onStartedLeading();
    }
  }

  /** Stops campaigning; a leader releases the Lease (holder cleared, 1 s duration). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.o.coordination.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity === this.o.identity) {
        const now = new V1MicroTime(Date.now());
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now };
        await this.o.coordination.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
        this.o.log.info('leader election: lease released');
      }
    } catch (err) {
      this.o.log.warn({ err: String(err) }, 'leader election: could not release the lease');
    }
  }
}
