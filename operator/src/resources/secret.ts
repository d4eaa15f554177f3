// Secret <name>-mailq: the MAILQv2 credentials the nodes use to relay ETRN to each other.
// Generated once; the planner reuses an existing Secret's password and never regenerates it.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels } from './labels.ts';
import { ETRN_USER, mailqSecretName } from './names.ts';
import { childMeta } from './owner.ts';

/** scheduler.auth (ZMailer format user:password:ATTRS:IP-ACLs). */
export function renderSchedulerAuth(password: string): string {
  // Peers are pods whose addresses change; the password is the guard, so the ACL is open.
  return `${ETRN_USER}:${password}:ETRN:[0.0.0.0]/0\n`;
}

export function buildMailqSecret(cluster: MailCluster, password: string) {
  if (!/^[A-Za-z0-9._~-]{16,}$/.test(password)) throw new Error('MAILQv2 password must be at least 16 URL-safe characters');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: childMeta(cluster, mailqSecretName(cluster.metadata.name), clusterLabels(cluster.metadata.name)),
    data: {
      'scheduler.auth': Buffer.from(renderSchedulerAuth(password)).toString('base64'),
      'etrn-password': Buffer.from(password).toString('base64'),
    },
  };
}

/** The password held by an existing Secret, or undefined when it has none. */
export function passwordOf(secret: { data?: Record<string, string> } | undefined): string | undefined {
  const raw = secret?.data?.['etrn-password'];
  if (!raw) return undefined;
  const pw = Buffer.from(raw, 'base64').toString('utf8');
  return pw.length > 0 ? pw : undefined;
}
