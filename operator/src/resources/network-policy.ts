// NetworkPolicy <name>: who may reach a cluster's pods (issue 10). Ingress only:
// - SMTP (2525) from anywhere: it is a mail relay;
// - MAILQv2 (1174) only from the cluster's own pods (ETRN relayed between peers);
// - admin (8025) only from the operator's pods and, when configured, from the namespaces the
//   metrics scraper runs in (admin serves /metrics; there is no separate metrics port).
// Kubelet probes come from the node itself, which NetworkPolicy always allows.
// Egress stays open: nodes deliver mail to the whole Internet.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels, podSelector } from './labels.ts';
import { ADMIN_PORT, MAILQ_PORT, networkPolicyName, SMTP_PORT } from './names.ts';
import { childMeta } from './owner.ts';

/** Where the operator runs and who scrapes metrics: from the operator's flags (the chart sets them). */
export interface AdminAccess {
  /** The operator's namespace. */
  operatorNamespace: string;
  /** Labels that select the operator's pods there. */
  operatorPodLabels: Record<string, string>;
  /** Namespaces (by label) whose pods may scrape /metrics on the admin port; none when undefined. */
  metricsNamespaceLabels?: Record<string, string>;
  /** Narrows the scrapers to these pods inside those namespaces. */
  metricsPodLabels?: Record<string, string>;
}

/** The label every namespace carries with its own name (Kubernetes sets it, 1.21+). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const tcp = (port: number) => ({ protocol: 'TCP', port });

export function buildNetworkPolicy(cluster: MailCluster, access: AdminAccess) {
  const name = cluster.metadata.name;
  const adminPeers: Array<Record<string, unknown>> = [{
    namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: access.operatorNamespace } },
    podSelector: { matchLabels: { ...access.operatorPodLabels } },
  }];
  if (access.metricsNamespaceLabels) {
    adminPeers.push({
      namespaceSelector: { matchLabels: { ...access.metricsNamespaceLabels } },
      ...(access.metricsPodLabels ? { podSelector: { matchLabels: { ...access.metricsPodLabels } } } : {}),
    });
  }
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMeta(cluster, networkPolicyName(name), clusterLabels(name)),
    spec: {
      podSelector: { matchLabels: podSelector(name) },
      policyTypes: ['Ingress'],
      ingress: [
        { ports: [tcp(SMTP_PORT)] },
        { from: [{ podSelector: { matchLabels: podSelector(name) } }], ports: [tcp(MAILQ_PORT)] },
        { from: adminPeers, ports: [tcp(ADMIN_PORT)] },
      ],
    },
  };
}

/** `k=v,k=v` into labels; throws with the flag's name on a malformed item. */
export function parseLabelSelector(text: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^((?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)=([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.exec(item);
    if (!m) throw new Error(`${flag} ${JSON.stringify(text)}: expected key=value[,key=value...] with Kubernetes label keys and values`);
    out[m[1]] = m[5] ?? '';
  }
  if (Object.keys(out).length === 0) throw new Error(`${flag}: an empty selector would select everything`);
  return out;
}
