// The cluster-wide children: one of each per MailCluster (Secrets, Services, PDB, NetworkPolicy).
// Secrets are derived from the operator's master key and the pod addresses, never read back:
// the planner says what they hold, the controller writes them when that changed.
import { networkPolicyName, pdbName, peersServiceName, peerTlsName, peerTlsSecretName, serviceName } from '../resources/names.ts';
import type { Peer } from '../resources/config.ts';
import { buildAdminSecret, buildMailqSecret } from '../resources/secret.ts';
import { buildService } from '../resources/service.ts';
import { buildPeersService } from '../resources/peers-service.ts';
import { buildPodDisruptionBudget } from '../resources/pdb.ts';
import { buildNetworkPolicy } from '../resources/network-policy.ts';
import { buildPeerCertificate } from '../resources/certificate.ts';
import { buildNodeAccess } from '../resources/node-access.ts';
import { indexOf } from '../resources/labels.ts';
import type { ObservedService } from './observed.ts';
import { byName, type PlanContext } from './plan_context.ts';

/** Plans the cluster-wide children; returns the Addr[0] Service as observed (for config and status). */
export function planClusterChildren(ctx: PlanContext): ObservedService | undefined {
  const { observed, cluster, name, spec, out } = ctx;
  out.secrets.push(buildAdminSecret(cluster, observed.credentials.adminToken));
  // The peer certificate: cert-manager's when an issuer is named, else made once by the operator.
  if (spec.peerTls?.issuerRef) out.unwatched.push(buildPeerCertificate(cluster, spec));
  else out.createOnce.push({ name: peerTlsSecretName(name), dnsName: peerTlsName(name, cluster.metadata.namespace) });

  // Each node's ServiceAccount, Role and RoleBinding (read its own ConfigMap): the account and
  // the Role are written with the first wave, before any pod (which names its account); the
  // RoleBinding with the pods (reconciler.ts). Watched: applied when missing or changed.
  // (Indices of pods that exist and of spool claims too: a claim's pod may come back to drain.)
  const nodeIndices = new Set([...Array.from({ length: ctx.desired }, (_, i) => i), ...[...observed.pods, ...observed.claims].map(indexOf).filter((i) => i !== undefined)]);
  for (const i of [...nodeIndices].sort((a, b) => a - b)) {
    for (const want of buildNodeAccess(cluster, i)) ctx.applyIfChanged(want, byName(observed.nodeAccess[want.kind as keyof typeof observed.nodeAccess], want.metadata.name));
  }

  const service = byName(observed.services, serviceName(name));
  ctx.applyIfChanged(buildService(cluster, spec), service);
  ctx.applyIfChanged(buildPeersService(cluster), byName(observed.services, peersServiceName(name)));
  ctx.applyIfChanged(buildPodDisruptionBudget(cluster), byName(observed.podDisruptionBudgets, pdbName(name)));
  ctx.applyIfChanged(buildNetworkPolicy(cluster, observed.adminAccess), byName(observed.networkPolicies, networkPolicyName(name)));
  return service;
}

/**
 * Secret <name>-mailq: the ETRN user may log in from the live pods' addresses only, so it is
 * rewritten with every change of them, together with the etrn-cluster lines (same peers).
 * First in the list: pods mount it.
 */
export function planMailqSecret(ctx: PlanContext, peers: Peer[]): void {
  const { observed, cluster, out } = ctx;
  out.secrets.unshift(buildMailqSecret(cluster, observed.credentials.mailqPassword, observed.credentials.adminToken, peers.map((p) => p.ip)));
}
