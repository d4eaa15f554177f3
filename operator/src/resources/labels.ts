// Labels and annotations of every child, exactly as DESIGN.md names them.

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_CLUSTER = 'mailcluster.io/cluster';
export const LABEL_INDEX = 'mailcluster.io/index';
export const LABEL_ROLE = 'mailcluster.io/role';

export const NODE_APP_NAME = 'mailcluster-node';
export const MANAGER = 'mailcluster-operator';
/** The selector the operator's informers use: only what it manages. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGER}`;

export type Role = 'serving' | 'draining';

// Annotations the operator keeps on its pods: the template hash detects spec changes; the
// drain markers make scale-down and rolling level-based (they survive an operator restart).
export const ANNOTATION_TEMPLATE_HASH = 'mailcluster.io/pod-template-hash';
export const ANNOTATION_DRAINING_SINCE = 'mailcluster.io/draining-since';
export const ANNOTATION_DRAIN_REASON = 'mailcluster.io/drain-reason';
export const ANNOTATION_DRAIN_REQUESTED = 'mailcluster.io/drain-requested';
export const ANNOTATION_PROXY_PROTOCOL = 'mailcluster.io/proxy-protocol';

/** Labels shared by every child of cluster `name`. */
export function clusterLabels(name: string): Record<string, string> {
  return {
    [LABEL_NAME]: NODE_APP_NAME,
    [LABEL_INSTANCE]: name,
    [LABEL_MANAGED_BY]: MANAGER,
    [LABEL_CLUSTER]: name,
  };
}

/** Labels of the per-node children (pod, ConfigMap, PVC). */
export function nodeLabels(name: string, index: number): Record<string, string> {
  return { ...clusterLabels(name), [LABEL_INDEX]: String(index) };
}

export function podLabels(name: string, index: number, role: Role): Record<string, string> {
  return { ...nodeLabels(name, index), [LABEL_ROLE]: role };
}

/** Selects all of a cluster's node pods, serving and draining. */
export function podSelector(name: string): Record<string, string> {
  return { [LABEL_NAME]: NODE_APP_NAME, [LABEL_INSTANCE]: name };
}

/** Selects the pods that take traffic from Addr[0]. */
export function servingSelector(name: string): Record<string, string> {
  return { ...podSelector(name), [LABEL_ROLE]: 'serving' };
}

/** `k=v,k=v` with keys sorted, as in status.selector. */
export function selectorString(labels: Record<string, string>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(',');
}

/** The index label of a child, or undefined when it is missing or malformed. */
export function indexOf(obj: { metadata?: { labels?: Record<string, string> } }): number | undefined {
  const raw = obj.metadata?.labels?.[LABEL_INDEX];
  if (raw === undefined || !/^(0|[1-9][0-9]{0,5})$/.test(raw)) return undefined;
  return Number(raw);
}
