// What the operator wrote and its informers have not shown yet. A reconcile plans from the
// informers' cache, which lags the operator's own writes (under load, by seconds): a cluster
// reconciled again in that gap sees the ConfigMap, pod or status it has just written as
// missing or stale and writes it again — at 1,000 MailClusters created together, about a dozen
// redundant applies per cluster (bench:scale). Here each write is remembered with the
// resourceVersion the API server answered, until the cache holds that version (or a later
// one, or a delete of the object), and:
// - a child whose desired content is the very one written (same hash) is not applied again;
// - the cluster's status is not written while its last status write is not in the cache yet:
//   the plan compared against a status older than the operator's own.
// Either way the cache's catching up is a watch event, which queues the cluster again, so
// nothing is lost by waiting; and an entry never outlives `ttlMs` (a missed event), after which
// writes go out as before. Pure bookkeeping: the caller passes the time.

export interface Pending { hash: string; resourceVersion: string; at: number }

/**
 * Whether an object the cache now holds (or a delete of it, at `observed`) shows the write
 * that answered `written`: the same resourceVersion, or — where both are decimal numbers, as
 * etcd's are — a later one. Kubernetes calls resourceVersions opaque, so a non-numeric one is
 * matched only exactly (and the entry then lasts until its TTL at most).
 */
export function showsWrite(written: string, observed: string | undefined): boolean {
  if (observed === undefined || observed === '') return false;
  if (observed === written) return true;
  if (!/^[0-9]{1,19}$/.test(written) || !/^[0-9]{1,19}$/.test(observed)) return false;
  return BigInt(observed) >= BigInt(written);
}

export class OwnWrites {
  private readonly pending = new Map<string, Pending>();
  private readonly ttlMs: number;

  constructor(ttlMs = 30_000) { this.ttlMs = ttlMs; }

  /** A write went through: `key` (kind/namespace/name, or a status key) now holds `hash` at `resourceVersion`. */
  wrote(key: string, hash: string, resourceVersion: string | undefined, now: number, cachedVersion?: string): void {
    // Without a version to wait for, or when the cache already shows it: nothing to remember.
    if (!resourceVersion || showsWrite(resourceVersion, cachedVersion)) { this.pending.delete(key); return; }
    this.pending.set(key, { hash, resourceVersion, at: now });
  }

  /** The informer delivered `key` at `resourceVersion` (deleted: the object is gone). */
  observed(key: string, resourceVersion: string | undefined, deleted: boolean): void {
    const p = this.pending.get(key);
    if (p && (deleted || showsWrite(p.resourceVersion, resourceVersion))) this.pending.delete(key);
  }

  /**
   * The write of `key` the cache has not shown yet, if it is not older than the TTL: with
   * `hash`, only when that write carried this content. Expired entries are dropped here.
   */
  unseen(key: string, now: number, hash?: string): Pending | undefined {
    const p = this.pending.get(key);
    if (!p) return undefined;
    if (now - p.at >= this.ttlMs) { this.pending.delete(key); return undefined; }
    return hash === undefined || p.hash === hash ? p : undefined;
  }

  /** How long until `p` expires (for a requeue that outlives a missed event). */
  remainingMs(p: Pending, now: number): number { return Math.max(1, this.ttlMs - (now - p.at)); }

  /** Drops every entry of a cluster's objects (it was deleted). */
  forget(predicate: (key: string) => boolean): void {
    for (const k of this.pending.keys()) if (predicate(k)) this.pending.delete(k);
  }

  get size(): number { return this.pending.size; }
}

/** The key of a child object. */
export const objectKey = (kind: string, namespace: string | undefined, name: string): string => `${kind}/${namespace ?? ''}/${name}`;
/** The key of a MailCluster's status. */
export const statusKey = (namespace: string, name: string): string => `MailCluster/status/${namespace}/${name}`;
