// The cluster-wide children: one of each per MailCluster (MAILQv2 Secret, Services, PDB).
import { mailqSecretName, pdbName, peersServiceName, serviceName } from '../resources/names.ts';
import { buildMailqSecret, passwordOf } from '../resources/secret.ts';
import { buildService } from '../resources/service.ts';
import { buildPeersService } from '../resources/peers-service.ts';
import { buildPodDisruptionBudget } from '../resources/pdb.ts';
import type { ObservedService } from './observed.ts';
import { byName, type PlanContext } from './plan_context.ts';

/** Plans the cluster-wide children; returns the Addr[0] Service as observed (for config and status). */
export function planClusterChildren(ctx: PlanContext): ObservedService | undefined {
  const { observed, cluster, name, spec, out } = ctx;
  const secret = byName(observed.secrets, mailqSecretName(name));
  const password = passwordOf(secret);
  if (!password) out.apply.push(buildMailqSecret(cluster, observed.newPassword));
  else ctx.applyIfChanged(buildMailqSecret(cluster, password), secret);

  const service = byName(observed.services, serviceName(name));
  ctx.applyIfChanged(buildService(cluster, spec), service);
  ctx.applyIfChanged(buildPeersService(cluster), byName(observed.services, peersServiceName(name)));
  ctx.applyIfChanged(buildPodDisruptionBudget(cluster), byName(observed.podDisruptionBudgets, pdbName(name)));
  return service;
}
