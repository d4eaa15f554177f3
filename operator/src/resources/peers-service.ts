// Headless Service <name>-peers: gives every pod its DNS name, ready or not.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels, podSelector } from './labels.ts';
import { ADMIN_PORT, MAILQ_PORT, peersServiceName, SMTP_PORT } from './names.ts';
import { childMeta } from './owner.ts';

export function buildPeersService(cluster: MailCluster) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(cluster, peersServiceName(cluster.metadata.name), clusterLabels(cluster.metadata.name)),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: podSelector(cluster.metadata.name),
      ports: [
        { name: 'smtp', protocol: 'TCP', port: SMTP_PORT, targetPort: SMTP_PORT },
        { name: 'mailq', protocol: 'TCP', port: MAILQ_PORT, targetPort: MAILQ_PORT },
        { name: 'admin', protocol: 'TCP', port: ADMIN_PORT, targetPort: ADMIN_PORT },
      ],
    },
  };
}
