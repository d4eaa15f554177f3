// Every child carries a controller ownerReference to its MailCluster, so that garbage
// collection removes it with the cluster and the informers can map it back.
import { API_VERSION, KIND, type MailCluster } from '../api/v1alpha1/types.ts';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export function ownerReference(cluster: MailCluster): OwnerReference {
  if (!cluster.metadata.uid) throw new Error(`MailCluster ${cluster.metadata.namespace}/${cluster.metadata.name} has no uid`);
  return { apiVersion: API_VERSION, kind: KIND, name: cluster.metadata.name, uid: cluster.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** metadata for a child: name, namespace, labels, the owner reference, annotations when any. */
export function childMeta(cluster: MailCluster, name: string, labels: Record<string, string>, annotations?: Record<string, string>) {
  return {
    name,
    namespace: cluster.metadata.namespace,
    labels,
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
    ownerReferences: [ownerReference(cluster)],
  };
}
