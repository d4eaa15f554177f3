// The reconcile planner: observed state in, desired writes and actions out. Pure — the
// controller does the I/O. Level-based: everything it needs to continue a scale-down or a
// roll is on the objects themselves (role label, drain annotations), so it picks up where it
// left off after an operator restart.
//
// This file only orchestrates; each concern has its own module (CloudNativePG style):
//   cluster_children.ts  cluster-wide children (Secrets, Services, PDB, NetworkPolicy)
//   cluster_create.ts    missing pods and claims; recovery of undrained claims
//   cluster_scale.ts     draining: scale-down and following a drain to its end
//   cluster_roll.ts      rolling template changes
//   cluster_config.ts    every node's ConfigMap
//   cluster_status.ts    status and conditions
//   cluster_deletion.ts  retentionPolicy.whenDeleted: the finalizer and the drain-out
//   claims.ts            the one place a spool claim is deleted
import { withDefaults } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { indexOf } from '../resources/labels.ts';
import { podName } from '../resources/names.ts';
import { planClaimOwnership } from './claims.ts';
import { planClusterChildren, planMailqSecret } from './cluster_children.ts';
import { deletionMode, releaseWhenEmpty } from './cluster_deletion.ts';
import { planConfiguration } from './cluster_config.ts';
import { planCreate } from './cluster_create.ts';
import { outdatedPods, planRoll, rollingNow } from './cluster_roll.ts';
import { planDraining, planScaleDown } from './cluster_scale.ts';
import { planStatus } from './cluster_status.ts';
import type { ObservedPod, ObservedState } from './observed.ts';
import { emptyPlan, isTerminating, newContext, POLL_MS, roleOf, TLS_RECHECK_MS, type Plan, type PodView } from './plan_context.ts';

export {
  DRAIN_REREQUEST_MS, isPodReady, POLL_MS,
  type CreateOnceSecret, type DeleteRequest, type DrainRequest, type Plan, type PlannedEvent, type PodPatch,
} from './plan_context.ts';

export function plan(observed: ObservedState): Plan {
  const { cluster } = observed;
  const spec = withDefaults(cluster.spec);
  const deletion = deletionMode(cluster, spec);
  if (deletion.untouched) {
    // Being deleted without our finalizer: garbage collection takes the children, claims stay.
    return { ...emptyPlan(), ...(deletion.finalizers ? { finalizers: deletion.finalizers } : {}) };
  }
  const ctx = newContext(observed, spec, deletion.drainOut ? 0 : spec.replicas);
  const { out, name, desired } = ctx;
  if (deletion.finalizers) out.finalizers = deletion.finalizers;

  const service = planClusterChildren(ctx);

  const byIndex = new Map<number, ObservedPod>();
  for (const p of observed.pods) {
    const i = indexOf(p);
    if (i === undefined || p.metadata.name !== podName(name, i)) continue; // not one of ours
    byIndex.set(i, p);
  }
  const pods: PodView = {
    byIndex,
    live: [...byIndex.entries()].filter(([, p]) => !isTerminating(p)),
    terminating: [...byIndex.values()].filter(isTerminating),
  };
  if (spec.tls && observed.tlsSecret && observed.tlsSecret !== 'ok') {
    const tlsProblem = { reason: observed.tlsSecret === 'missing' ? 'TLSSecretMissing' as const : 'TLSSecretInvalid' as const, secret: spec.tls.secretName };
    ctx.tlsProblem = tlsProblem;
    ctx.requeue(TLS_RECHECK_MS);
    out.events.push({ type: 'Warning', reason: tlsProblem.reason, message: `TLS Secret ${tlsProblem.secret} is ${tlsProblem.reason === 'TLSSecretMissing' ? 'missing' : 'invalid'}: no new nodes are started` });
  }

  planClaimOwnership(ctx);
  const { missing, creating } = planCreate(ctx, pods);

  const draining = pods.live.filter(([, p]) => roleOf(p) === 'draining');
  const serving = pods.live.filter(([, p]) => roleOf(p) !== 'draining');
  const excess = serving.filter(([i]) => i >= desired).sort((a, b) => b[0] - a[0]);
  const outdated = outdatedPods(ctx, serving);
  if (rollingNow(ctx, pods.live, serving, outdated, missing, pods.terminating)) ctx.rollout = 'rolling';

  // Serving pods with an address take a draining node's hand-off (the one about to drain excepted).
  const peersFor = (i: number): number => serving.filter(([j, p]) => j !== i && p.status?.podIP).length;
  // Finish what is draining before starting anything else (a scale-down drains all its nodes
  // together, a roll one node at a time).
  planDraining(ctx, draining, serving.filter(([, p]) => p.status?.podIP).length);
  if (draining.length === 0 && pods.terminating.length === 0) {
    if (excess.length > 0) planScaleDown(ctx, excess, desired > 0 ? serving.filter(([j, p]) => j < desired && p.status?.podIP).length : peersFor(excess[0][0]));
    else if (outdated.length > 0 && creating.length === 0) planRoll(ctx, outdated, serving, missing);
  }
  if (pods.terminating.length > 0) ctx.requeue(POLL_MS * 2);

  if (ctx.rollout === undefined && outdated.length > 0 && ctx.observed.rolloutAllowed === false) ctx.rollout = 'waiting';
  if (ctx.rollout) out.rollout = ctx.rollout;
  const { view, peers, reconfigured } = planConfiguration(ctx, pods, creating, service);
  planMailqSecret(ctx, peers);
  planStatus(ctx, { live: pods.live, serving, excess, outdated, missing, reconfigured, view, service });
  if (deletion.drainOut) {
    const released = releaseWhenEmpty(cluster, byIndex.size, observed.claims.length);
    if (released) {
      out.finalizers = released;
      out.events.push({ type: 'Normal', reason: 'SpoolsDrained', message: 'every node reported itself drained and every spool claim is deleted; releasing the MailCluster' });
    }
  }
  return out;
}

export type { MailCluster };
