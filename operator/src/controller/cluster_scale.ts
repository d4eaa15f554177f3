// Draining: starting a drain (scale-down, or a roll), and following every draining pod until
// its node reports itself drained.
import { parseDuration } from '../api/v1alpha1/duration.ts';
import { ANNOTATION_DRAIN_REASON, ANNOTATION_DRAIN_REQUESTED, ANNOTATION_DRAINING_SINCE, LABEL_ROLE } from '../resources/labels.ts';
import { deletePod } from './claims.ts';
import type { ObservedPod } from './observed.ts';
import { adminUrl, DRAIN_REREQUEST_MS, iso, POLL_MS, sinceMs, type PlanContext } from './plan_context.ts';

/** Relabels a pod draining (it leaves the Service) and asks its node to drain. */
export function startDrain(ctx: PlanContext, p: ObservedPod, reason: 'scale-down' | 'roll'): void {
  const { out, now, desired } = ctx;
  out.patchPods.push({
    name: p.metadata.name,
    labels: { [LABEL_ROLE]: 'draining' },
    annotations: { [ANNOTATION_DRAINING_SINCE]: iso(now), [ANNOTATION_DRAIN_REASON]: reason },
  });
  out.events.push({ type: 'Normal', reason: 'Draining', message: `draining ${p.metadata.name} (${reason === 'roll' ? 'rolling to the new pod template' : `scaling down to ${desired}`})` });
  ctx.drainingFacts.push({ pod: p.metadata.name, reason, stalled: false });
  // Right after the relabel (the controller patches first): it has left the Service.
  const ip = p.status?.podIP;
  if (ip) out.drain.push({ pod: p.metadata.name, url: adminUrl(ip, '/drain') });
  ctx.requeue(POLL_MS);
}

/** Follows the pods already draining: ask again, wait, or delete once drained. */
export function planDraining(ctx: PlanContext, draining: Array<[number, ObservedPod]>): void {
  const { out, observed, name, spec, desired, now } = ctx;
  const drainTimeoutMs = parseDuration(spec.drainTimeout);
  for (const [i, p] of draining) {
    const pod = p.metadata.name;
    const reason = p.metadata.annotations?.[ANNOTATION_DRAIN_REASON] ?? (i >= desired ? 'scale-down' : 'roll');
    const elapsed = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAINING_SINCE], now) ?? 0;
    const stalled = elapsed > drainTimeoutMs;
    ctx.drainingFacts.push({ pod, reason, stalled: stalled && i >= desired });
    ctx.requeue(POLL_MS);
    const ip = p.status?.podIP;
    const keepSpool = i < desired; // a rolled pod comes back at the same index, with its spool
    if (!ip) {
      // Never started (no address): it cannot hold mail that it accepted.
      if (!p.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0 || c.ready)) {
        deletePod(out, name, i, keepSpool);
        out.events.push({ type: 'Normal', reason: 'Drained', message: `${pod} never started; deleting it` });
      }
      continue;
    }
    const requestedAgo = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAIN_REQUESTED], now);
    const probe = observed.queues[pod];
    if (requestedAgo !== undefined && probe && 'total' in probe && probe.total === 0) {
      deletePod(out, name, i, keepSpool);
      out.events.push({ type: 'Normal', reason: 'Drained', message: `${pod} has an empty queue; deleting it${keepSpool ? '' : ' and its spool'}` });
      continue;
    }
    if (stalled && keepSpool) {
      // A rolled node keeps its spool and the new pod at this index delivers it: go on.
      deletePod(out, name, i, true);
      out.events.push({ type: 'Warning', reason: 'DrainTimeout', message: `${pod} did not empty its queue within ${spec.drainTimeout}; replacing it, its spool stays with the new pod` });
      continue;
    }
    const forgot = probe !== undefined && 'total' in probe && probe.draining === false; // restarted since
    if (requestedAgo === undefined || requestedAgo >= DRAIN_REREQUEST_MS || forgot) {
      out.drain.push({ pod, url: adminUrl(ip, '/drain') });
    }
    if (stalled) {
      const held = probe && 'total' in probe ? `${probe.total} messages` : `queue unknown (${probe && 'error' in probe ? probe.error : 'not asked yet'})`;
      out.events.push({ type: 'Warning', reason: 'DrainStalled', message: `${pod} still holds mail after ${spec.drainTimeout}: ${held}; keeping it` });
    }
  }
}

/** Scale-down: the highest serving index above the desired count starts draining. */
export function planScaleDown(ctx: PlanContext, excess: Array<[number, ObservedPod]>): void {
  const [i, p] = excess[0];
  if (!p.status?.podIP) { deletePod(ctx.out, ctx.name, i, false); ctx.requeue(POLL_MS); }
  else startDrain(ctx, p, 'scale-down');
}
