// Status: what the cluster is, in the facts the conditions are computed from. Written only
// when it differs from the current status (no reconcile storms).
import type { MailClusterStatus } from '../api/v1alpha1/types.ts';
import { canonicalJson } from '../resources/hash.ts';
import { podSelector, selectorString } from '../resources/labels.ts';
import { clusterSelfAddresses, peerList, type ClusterView } from '../resources/config.ts';
import { computeConditions, type ClusterFacts } from './conditions/index.ts';
import type { ObservedPod, ObservedService } from './observed.ts';
import { isPodReady, loadBalancerAddresses, type PlanContext } from './plan_context.ts';

function failureOf(p: ObservedPod): string | undefined {
  if (p.status?.phase === 'Failed') return 'Failed';
  for (const cs of p.status?.containerStatuses ?? []) {
    const reason = cs.state?.waiting?.reason;
    if (reason && /BackOff|ErrImage|Error|Invalid/.test(reason)) return reason;
  }
  return undefined;
}

export interface StatusInputs {
  live: Array<[number, ObservedPod]>;
  serving: Array<[number, ObservedPod]>;
  excess: Array<[number, ObservedPod]>;
  outdated: Array<[number, ObservedPod]>;
  missing: number[];
  reconfigured: number;
  view: ClusterView;
  service: ObservedService | undefined;
}

export function planStatus(ctx: PlanContext, s: StatusInputs): void {
  const { cluster, name, spec, desired, now, observed, drainingFacts, tlsProblem, out } = ctx;
  const failing = s.live.map(([, p]) => ({ pod: p.metadata.name, reason: failureOf(p) }))
    .filter((x): x is { pod: string; reason: string } => x.reason !== undefined);
  const facts: ClusterFacts = {
    desired,
    // A node serves at its address: a pod Ready without one (kubemark's hollow pods report Ready
    // before their address) is not yet in any peer list, so it does not count.
    readyServing: s.serving.filter(([i, p]) => i < desired && isPodReady(p) && Boolean(p.status?.podIP)).length,
    missing: s.missing,
    draining: drainingFacts,
    excess: s.excess.map(([, p]) => p.metadata.name).filter((n) => !drainingFacts.some((d) => d.pod === n)),
    outdated: s.outdated.map(([, p]) => p.metadata.name).filter((n) => !drainingFacts.some((d) => d.pod === n)),
    failing,
    ...(tlsProblem ? { tlsProblem } : {}),
    reconfigured: s.reconfigured,
    ...(observed.lastError ? { lastError: observed.lastError } : {}),
    ...(cluster.metadata.deletionTimestamp ? { deleting: true } : {}),
    ...(ctx.rollout ? { rollout: ctx.rollout } : {}),
  };
  const generation = cluster.metadata.generation ?? 0;
  const address = loadBalancerAddresses(s.service)[0] ?? (spec.service.type !== 'LoadBalancer' ? s.service?.spec?.clusterIP : undefined);
  const status: MailClusterStatus = {
    observedGeneration: generation,
    replicas: s.live.length,
    readyReplicas: facts.readyServing,
    selector: selectorString(podSelector(name)),
    ...(address ? { address } : {}),
    peers: peerList(s.view),
    selfAddresses: clusterSelfAddresses(s.view),
    conditions: computeConditions(facts, cluster.status?.conditions, generation, now),
  };
  if (canonicalJson(status) !== canonicalJson(cluster.status ?? {})) out.status = status;
}
