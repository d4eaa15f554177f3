// Rolling: a pod whose template hash is outdated is drained and replaced at the same index,
// one at a time, keeping its spool.
import { ANNOTATION_DRAIN_REASON, ANNOTATION_TEMPLATE_HASH } from '../resources/labels.ts';
import { podTemplateHash } from '../resources/pod.ts';
import { deletePod } from './claims.ts';
import { startDrain } from './cluster_scale.ts';
import type { ObservedPod } from './observed.ts';
import { isPodReady, POLL_MS, type PlanContext } from './plan_context.ts';

/** Serving pods below the desired count whose template changed, highest index first. */
export function outdatedPods(ctx: PlanContext, serving: Array<[number, ObservedPod]>): Array<[number, ObservedPod]> {
  const { cluster, spec, desired } = ctx;
  return serving
    .filter(([i, p]) => i < desired && p.metadata.annotations?.[ANNOTATION_TEMPLATE_HASH] !== podTemplateHash(cluster, spec, i))
    .sort((a, b) => b[0] - a[0]);
}

/**
 * Is this cluster in the middle of a rollout — from its first replaced pod until every pod
 * runs the new template and is Ready? Read from what is observed, so an operator restart
 * finds every rollout in progress: a pod draining to be rolled, pods of mixed template hashes
 * below the desired count, or a status that says Rolling (written once the rollout had its
 * slot) while anything is left: an outdated pod, a replaced pod still terminating or not created
 * yet, a new pod not Ready yet.
 */
export function rollingNow(ctx: PlanContext, live: Array<[number, ObservedPod]>, serving: Array<[number, ObservedPod]>, outdated: Array<[number, ObservedPod]>, missing: number[], terminating: ObservedPod[] = []): boolean {
  const { cluster, desired } = ctx;
  const rollDraining = live.some(([, p]) => p.metadata.annotations?.[ANNOTATION_DRAIN_REASON] === 'roll' && p.metadata.labels?.['mailcluster.io/role'] === 'draining');
  if (rollDraining) return true;
  // A pod drained for the roll and on its way out: its replacement is not even created yet.
  // (The last one matters: no outdated pod is left, yet the cluster is one pod short of the
  // new template; freeing the slot here let more clusters roll than the limit.)
  if (terminating.some((p) => p.metadata.annotations?.[ANNOTATION_DRAIN_REASON] === 'roll')) return true;
  const below = serving.filter(([i]) => i < desired);
  if (outdated.length > 0 && below.length > outdated.length) return true; // mixed hashes
  const progressing = cluster.status?.conditions?.find((c) => c.type === 'Progressing');
  const saysRolling = progressing?.status === 'True' && progressing.reason === 'Rolling';
  return saysRolling && (outdated.length > 0 || missing.length > 0 || terminating.length > 0 || below.some(([, p]) => !isPodReady(p)));
}

export function planRoll(ctx: PlanContext, outdated: Array<[number, ObservedPod]>, serving: Array<[number, ObservedPod]>, missing: number[]): void {
  const { out, name, desired } = ctx;
  // The cluster-wide pace: a cluster not rolling yet starts only with a slot (the edge decides).
  if (ctx.rollout !== 'rolling' && ctx.observed.rolloutAllowed === false) { ctx.rollout = 'waiting'; return; }
  const allOthersReady = (except: number): boolean =>
    serving.filter(([i]) => i !== except && i < desired).every(([, p]) => isPodReady(p)) && missing.length === 0;
  // Roll one pod at a time, and only while the rest of the cluster serves; a pod that is
  // not ready itself (a bad image) may be replaced at once.
  const notReady = outdated.find(([, p]) => !isPodReady(p));
  const [i, p] = notReady ?? outdated[0];
  // Once it may roll it holds its slot, even while it waits for the rest to be ready.
  ctx.rollout = 'rolling';
  if (!allOthersReady(i)) return;
  // A pod that does not serve has nothing in flight: replace it (its spool stays).
  if (!isPodReady(p)) {
    deletePod(out, name, i);
    out.events.push({ type: 'Normal', reason: 'Rolling', message: `replacing ${p.metadata.name} (not ready) with the new pod template` });
    ctx.requeue(POLL_MS);
  } else {
    out.events.push({ type: 'Normal', reason: 'Rolling', message: `rolling ${p.metadata.name} to the new pod template` });
    startDrain(ctx, p, 'roll');
  }
}
