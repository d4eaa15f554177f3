// cert-manager Certificate <name>-peer-tls (spec.peerTls.issuerRef): the peer certificate issued
// and renewed by cert-manager into the same Secret the operator would otherwise create once.
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels } from './labels.ts';
import { peerTlsName, peerTlsSecretName } from './names.ts';
import { childMeta } from './owner.ts';

export function buildPeerCertificate(cluster: MailCluster, spec: DefaultedSpec) {
  const issuer = spec.peerTls?.issuerRef;
  if (!issuer) throw new Error('spec.peerTls.issuerRef is not set');
  const name = cluster.metadata.name;
  const dnsName = peerTlsName(name, cluster.metadata.namespace);
  return {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: childMeta(cluster, peerTlsSecretName(name), clusterLabels(name)),
    spec: {
      secretName: peerTlsSecretName(name),
      secretTemplate: { labels: clusterLabels(name) },
      commonName: dnsName,
      dnsNames: [dnsName],
      usages: ['server auth', 'client auth', 'digital signature', 'key encipherment'],
      privateKey: { algorithm: 'RSA', size: 2048, rotationPolicy: 'Always' },
      issuerRef: { name: issuer.name, kind: issuer.kind ?? 'Issuer', group: issuer.group ?? 'cert-manager.io' },
    },
  };
}
