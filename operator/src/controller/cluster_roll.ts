// Rolling: a pod whose template hash is outdated is drained and replaced at the same index,
// one at a time, keeping its spool.
import { ANNOTATION_TEMPLATE_HASH } from '../resources/labels.ts';
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

export function planRoll(ctx: PlanContext, outdated: Array<[number, ObservedPod]>, serving: Array<[number, ObservedPod]>, missing: number[]): void {
  const { out, name, desired } = ctx;
  const allOthersReady = (except: number): boolean =>
    serving.filter(([i]) => i !== except && i < desired).every(([, p]) => isPodReady(p)) && missing.length === 0;
  // Roll one pod at a time, and only while the rest of the cluster serves; a pod that is
  // not ready itself (a bad image) may be replaced at once.
  const notReady = outdated.find(([, p]) => !isPodReady(p));
  const [i, p] = notReady ?? outdated[0];
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
