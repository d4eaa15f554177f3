// PersistentVolumeClaim <name>-<i>-spool: the node's durable queue. It carries no owner
// reference, whatever the retention policy: garbage collection (background, foreground, or
// after a finalizer removed by hand) must never take mail. The operator finds its claims by
// label, and deletes one only after the node on it reported itself drained (claims.ts).
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { nodeLabels } from './labels.ts';
import { spoolClaimName } from './names.ts';

export function buildSpoolClaim(cluster: MailCluster, spec: DefaultedSpec, index: number) {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: spoolClaimName(cluster.metadata.name, index),
      namespace: cluster.metadata.namespace,
      labels: nodeLabels(cluster.metadata.name, index),
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: spec.storage.size } },
      ...(spec.storage.storageClassName !== undefined ? { storageClassName: spec.storage.storageClassName } : {}),
    },
  };
}

interface ObservedClaim {
  metadata: { ownerReferences?: unknown[] };
  spec?: { resources?: { requests?: { storage?: string } }; storageClassName?: string };
}

/**
 * The apply that takes an existing claim's owner reference away (a claim made by an earlier
 * operator version, or adopted): the same claim with its own size and class, so nothing but
 * the owner reference changes. Server-side apply drops the fields this manager no longer sets.
 */
export function disownedSpoolClaim(cluster: MailCluster, spec: DefaultedSpec, index: number, have: ObservedClaim) {
  const claim = buildSpoolClaim(cluster, spec, index);
  const size = have.spec?.resources?.requests?.storage;
  const cls = have.spec?.storageClassName;
  return {
    ...claim,
    spec: {
      ...claim.spec,
      ...(size ? { resources: { requests: { storage: size } } } : {}),
      ...(cls !== undefined ? { storageClassName: cls } : {}),
    },
  };
}
