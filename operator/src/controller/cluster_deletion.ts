// Deleting a MailCluster (spec.storage.retentionPolicy.whenDeleted).
//
// Retain (default): nothing to do. Pods, ConfigMaps, Services, Secret and PDB go by garbage
// collection; spool claims have no owner reference, so they stay, and a MailCluster created
// again with the same name finds them by label and mounts them again.
//
// Delete: a finalizer holds the MailCluster while the planner runs with a desired count of
// 0 — the ordinary scale-down: the highest node is relabelled draining, hands its queue to the
// ones still serving, reports itself drained, and only then goes with its claim (claims.ts);
// claims without a pod are started as draining pods and drained. The last node has no peer
// to hand off to: it delivers (or bounces at the queue lifetime) what it holds. When no pod
// and no claim is left the finalizer is removed and garbage collection takes the rest.
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';

export const SPOOL_FINALIZER = 'mailcluster.io/drain-spools';

export interface DeletionMode {
  /** Plan nothing but `finalizers` (Retain, or nothing of ours holds the MailCluster). */
  untouched: boolean;
  /** Drain everything out: plan with a desired count of 0. */
  drainOut: boolean;
  /** The finalizer list when it must change now. */
  finalizers?: string[];
}

export function deletionMode(cluster: MailCluster, spec: DefaultedSpec): DeletionMode {
  const current = cluster.metadata.finalizers ?? [];
  const held = current.includes(SPOOL_FINALIZER);
  const wantDelete = spec.storage.retentionPolicy.whenDeleted === 'Delete';
  const without = current.filter((f) => f !== SPOOL_FINALIZER);
  if (cluster.metadata.deletionTimestamp) {
    if (wantDelete && held) return { untouched: false, drainOut: true };
    // Retain, or deleted before the finalizer was ever added: the claims stay (no owner reference).
    return { untouched: true, drainOut: false, ...(held ? { finalizers: without } : {}) };
  }
  if (wantDelete && !held) return { untouched: false, drainOut: false, finalizers: [...current, SPOOL_FINALIZER] };
  if (!wantDelete && held) return { untouched: false, drainOut: false, finalizers: without };
  return { untouched: false, drainOut: false };
}

/** Once drained out (no pod, no claim left), the finalizer goes and the MailCluster with it. */
export function releaseWhenEmpty(cluster: MailCluster, podsLeft: number, claimsLeft: number): string[] | undefined {
  if (podsLeft > 0 || claimsLeft > 0) return undefined;
  return (cluster.metadata.finalizers ?? []).filter((f) => f !== SPOOL_FINALIZER);
}
