// GET /queue probes of draining nodes, off the reconcile path. A reconcile never waits for a
// node: it reads the last answer for each of its draining pods (with the time it was asked and
// the pod's restart count then) and asks for a new one when that answer is older than
// `refreshMs`. Probes run in the background, at most `concurrency` at a time across all
// clusters, each with its own timeout, one at a time per pod; when one finishes with news (a
// first answer, a changed one, or one that says drained — worth acting on while it is fresh)
// the cluster is queued again. Whether an answer is fresh enough to let a spool claim go is the
// planner's decision (claims.ts drainedOnClaim), from `askedAt` and `restarts`.
import type { QueueProbe } from './observed.ts';
import { probeQueue } from './node-admin.ts';
export { restartsOf } from './claims.ts';

export interface ProbeTarget {
  pod: string;
  uid: string;
  /** http://<pod IP>:8025 */
  baseUrl: string;
  /** The pod's container restart count as observed when asking (a restart voids a drained answer). */
  restarts: number;
}

export interface QueueProberOptions {
  /** Probes in flight at once, across every cluster. */
  concurrency?: number;
  /** Per-probe timeout. */
  timeoutMs?: number;
  /** An answer older than this is asked again when a reconcile reads it. */
  refreshMs?: number;
  /** A probe for `cluster` finished with news: queue that cluster. */
  onAnswer: (cluster: string) => void;
  /** The request itself (node-admin.ts probeQueue); replaceable to point at test servers. */
  probe?: (baseUrl: string, token: string, uid: string, timeoutMs: number) => Promise<QueueProbe>;
  now?: () => number;
  onProbe?: (result: 'answer' | 'error') => void;
  onInFlight?: (n: number) => void;
}

interface Entry {
  cluster: string;
  target: ProbeTarget;
  token: string;
  answer?: QueueProbe;
  /** Waiting for a slot or in flight. */
  busy: boolean;
}

export class QueueProber {
  private readonly o: Required<Pick<QueueProberOptions, 'concurrency' | 'timeoutMs' | 'refreshMs'>> & QueueProberOptions;
  /** By pod UID: an answer belongs to one pod, never to another of the same name. */
  private readonly entries = new Map<string, Entry>();
  private readonly byCluster = new Map<string, Set<string>>();
  private readonly waiting: string[] = [];
  private inFlight = 0;
  private stopped = false;

  constructor(o: QueueProberOptions) {
    this.o = { concurrency: 16, timeoutMs: 3000, refreshMs: 500, ...o };
  }

  private get now(): number { return (this.o.now ?? Date.now)(); }

  /**
   * The last answers for `cluster`'s draining pods, by pod name (a pod never asked yet has
   * none), and asks again in the background for each whose answer is missing or older than
   * refreshMs. Pods of this cluster no longer listed are forgotten.
   */
  answers(cluster: string, token: string, targets: ProbeTarget[]): Record<string, QueueProbe> {
    const out: Record<string, QueueProbe> = {};
    const uids = new Set(targets.map((t) => t.uid));
    for (const uid of this.byCluster.get(cluster) ?? []) if (!uids.has(uid)) this.entries.delete(uid);
    if (uids.size > 0) this.byCluster.set(cluster, uids); else this.byCluster.delete(cluster);
    for (const t of targets) {
      let e = this.entries.get(t.uid);
      if (!e) { e = { cluster, target: t, token, busy: false }; this.entries.set(t.uid, e); }
      e.target = t; // the address may have changed; the restart count surely may
      e.token = token;
      if (e.answer) out[t.pod] = e.answer;
      const askedAt = e.answer && 'askedAt' in e.answer ? e.answer.askedAt ?? 0 : 0;
      if (!e.busy && (!e.answer || this.now - askedAt >= this.o.refreshMs)) this.enqueue(t.uid, e);
    }
    return out;
  }

  /** Drops everything about a cluster (deleted). */
  forget(cluster: string): void {
    for (const uid of this.byCluster.get(cluster) ?? []) this.entries.delete(uid);
    this.byCluster.delete(cluster);
  }

  stop(): void { this.stopped = true; this.waiting.length = 0; }

  /** Probes waiting for a slot (for tests). */
  get pending(): number { return this.waiting.length; }
  get running(): number { return this.inFlight; }

  private enqueue(uid: string, e: Entry): void {
    e.busy = true;
    this.waiting.push(uid);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.inFlight < this.o.concurrency && this.waiting.length > 0) {
      const uid = this.waiting.shift()!;
      const e = this.entries.get(uid);
      if (!e) continue; // forgotten while waiting
      this.inFlight++;
      this.o.onInFlight?.(this.inFlight);
      void this.run(uid, e);
    }
  }

  private async run(uid: string, e: Entry): Promise<void> {
    const { target } = e;
    const askedAt = this.now;
    let answer: QueueProbe;
    try {
      answer = await (this.o.probe ?? probeQueue)(target.baseUrl, e.token, uid, this.o.timeoutMs);
    } catch (err) {
      answer = { error: `GET /queue: ${(err as Error).message}`, uid };
    }
    this.inFlight--;
    this.o.onInFlight?.(this.inFlight);
    this.o.onProbe?.('error' in answer ? 'error' : 'answer');
    e.busy = false;
    if (this.stopped || this.entries.get(uid) !== e) { this.pump(); return; } // forgotten meanwhile
    const stamped: QueueProbe = 'error' in answer ? { ...answer, uid } : { ...answer, uid, askedAt, restarts: target.restarts };
    const before = e.answer;
    e.answer = stamped;
    const news = !before || gist(before) !== gist(stamped) || ('drained' in stamped && stamped.drained === true);
    if (news) this.o.onAnswer(e.cluster);
    this.pump();
  }
}

/** What an answer says, without when it was asked. */
function gist(p: QueueProbe): string {
  if ('error' in p) return `error:${p.error}`;
  return JSON.stringify([p.total, p.draining, p.drained, p.uid, p.restarts]);
}
