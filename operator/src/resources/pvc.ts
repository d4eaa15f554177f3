// PersistentVolumeClaim <name>-<i>-spool: the node's durable queue.
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { nodeLabels } from './labels.ts';
import { spoolClaimName } from './names.ts';
import { childMeta } from './owner.ts';

export function buildSpoolClaim(cluster: MailCluster, spec: DefaultedSpec, index: number) {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: childMeta(cluster, spoolClaimName(cluster.metadata.name, index), nodeLabels(cluster.metadata.name, index)),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: spec.storage.size } },
      ...(spec.storage.storageClassName !== undefined ? { storageClassName: spec.storage.storageClassName } : {}),
    },
  };
}
