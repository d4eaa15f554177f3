// Service <name>: Addr[0]. Selects serving pods only, so a draining node leaves it.
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { ANNOTATION_PROXY_PROTOCOL, clusterLabels, servingSelector } from './labels.ts';
import { serviceName, SMTP_PORT } from './names.ts';
import { childMeta } from './owner.ts';

export function buildService(cluster: MailCluster, spec: DefaultedSpec) {
  const s = spec.service;
  const annotations: Record<string, string> = { ...(s.annotations ?? {}) };
  if (s.proxyProtocol) annotations[ANNOTATION_PROXY_PROTOCOL] = 'v2';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(cluster, serviceName(cluster.metadata.name), clusterLabels(cluster.metadata.name), annotations),
    spec: {
      type: s.type,
      selector: servingSelector(cluster.metadata.name),
      ports: [{ name: 'smtp', protocol: 'TCP', port: s.port, targetPort: SMTP_PORT }],
      ...(s.loadBalancerIP !== undefined ? { loadBalancerIP: s.loadBalancerIP } : {}),
      ...(s.loadBalancerClass !== undefined ? { loadBalancerClass: s.loadBalancerClass } : {}),
      ...(s.externalTrafficPolicy !== undefined ? { externalTrafficPolicy: s.externalTrafficPolicy } : {}),
    },
  };
}
