// What a node may do with the API server: read its own ConfigMap, nothing else. Each pod runs
// as its own ServiceAccount <name>-<i>-node, bound by RoleBinding <name>-<i>-node to Role
// <name>-<i>-node, whose one rule is get/list/watch on ConfigMap <name>-<i>-config by name
// (a list or watch passes a resourceNames rule only with the field selector
// metadata.name=<that name>, which is how the node watches it). With it a node applies a new
// peer list as soon as the operator writes it, instead of after the kubelet's volume refresh
// (its sync period, about a minute); the mounted file stays the fallback.
// One account per pod rather than per cluster: a node's token then reads exactly one object.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { nodeLabels } from './labels.ts';
import { configMapName, nodeAccessName } from './names.ts';
import { childMeta } from './owner.ts';

export const NODE_CONFIGMAP_VERBS = ['get', 'list', 'watch'];

export function buildNodeServiceAccount(cluster: MailCluster, index: number) {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: childMeta(cluster, nodeAccessName(cluster.metadata.name, index), nodeLabels(cluster.metadata.name, index)),
    // Only the node's pod, which asks for the token itself (automountServiceAccountToken: true).
    automountServiceAccountToken: false,
  };
}

export function buildNodeRole(cluster: MailCluster, index: number) {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: childMeta(cluster, nodeAccessName(cluster.metadata.name, index), nodeLabels(cluster.metadata.name, index)),
    rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [configMapName(cluster.metadata.name, index)], verbs: [...NODE_CONFIGMAP_VERBS] }],
  };
}

export function buildNodeRoleBinding(cluster: MailCluster, index: number) {
  const name = nodeAccessName(cluster.metadata.name, index);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: childMeta(cluster, name, nodeLabels(cluster.metadata.name, index)),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: cluster.metadata.namespace }],
  };
}

/** The three objects of node `index`, in the order they must exist (the pod names the account). */
export function buildNodeAccess(cluster: MailCluster, index: number) {
  return [buildNodeServiceAccount(cluster, index), buildNodeRole(cluster, index), buildNodeRoleBinding(cluster, index)];
}
