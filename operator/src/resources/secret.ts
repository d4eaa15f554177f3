// The Secrets the operator writes for a cluster, all derived (credentials.ts) or rendered, so
// it never has to read one back:
// - <name>-mailq: scheduler.auth (the ETRN user, allowed only from the cluster's live pod
//   addresses), the etrn-cluster password file and admin-token.sha256, mounted into the pods;
// - <name>-admin: the admin token in plain text (key `token`), for people and the kubectl
//   plugin, never mounted.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { hostCidr, sortAddresses } from './addresses.ts';
import { sha256Hex } from './credentials.ts';
import { clusterLabels } from './labels.ts';
import { adminSecretName, ETRN_USER, mailqSecretName } from './names.ts';
import { childMeta } from './owner.ts';

/** An ACL no client matches: used while no pod has an address (an empty ACL would allow everyone). */
export const NOBODY_ACL = '[0.0.0.0]/32';

/** One scheduler.auth ACL item per live pod address: `[ip]/32`, IPv6 `[ip]/128`. */
export function podAcls(podIps: readonly string[]): string[] {
  const items = sortAddresses(podIps).map((ip) => {
    const [address, bits] = hostCidr(ip).split('/');
    return `[${address}]/${bits}`;
  });
  return items.length > 0 ? items : [NOBODY_ACL];
}

/** scheduler.auth (ZMailer format user:password:ATTRS:IP-ACLs, ACL items space-separated). */
export function renderSchedulerAuth(password: string, podIps: readonly string[]): string {
  return `${ETRN_USER}:${password}:ETRN:${podAcls(podIps).join(' ')}\n`;
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

export function buildMailqSecret(cluster: MailCluster, password: string, adminToken: string, podIps: readonly string[]) {
  if (!/^[A-Za-z0-9._~-]{16,}$/.test(password)) throw new Error('MAILQv2 password must be at least 16 URL-safe characters');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: childMeta(cluster, mailqSecretName(cluster.metadata.name), clusterLabels(cluster.metadata.name)),
    data: {
      'scheduler.auth': b64(renderSchedulerAuth(password, podIps)),
      'etrn-password': b64(password),
      'admin-token.sha256': b64(`${sha256Hex(adminToken)}\n`),
    },
  };
}

export function buildAdminSecret(cluster: MailCluster, adminToken: string) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: childMeta(cluster, adminSecretName(cluster.metadata.name), clusterLabels(cluster.metadata.name)),
    data: { token: b64(adminToken) },
  };
}
