// PodDisruptionBudget <name>: voluntary evictions take one node at a time.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels, podSelector } from './labels.ts';
import { pdbName } from './names.ts';
import { childMeta } from './owner.ts';

export function buildPodDisruptionBudget(cluster: MailCluster) {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMeta(cluster, pdbName(cluster.metadata.name), clusterLabels(cluster.metadata.name)),
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: podSelector(cluster.metadata.name) },
    },
  };
}
