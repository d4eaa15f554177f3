// Draining: starting a drain (scale-down, or a roll), and following every draining pod until
// its node reports itself drained.
import { parseDuration } from '../api/v1alpha1/duration.ts';
import { ANNOTATION_DRAIN_REASON, ANNOTATION_DRAIN_REQUESTED, ANNOTATION_DRAINING_SINCE, LABEL_ROLE } from '../resources/labels.ts';
import { deleteDrainedNode, deletePod } from './claims.ts';
import type { ObservedPod, QueueProbe } from './observed.ts';
import { adminUrl, DRAIN_REREQUEST_MS, iso, POLL_MS, sinceMs, type PlanContext } from './plan_context.ts';

/**
 * Relabels a pod draining (it leaves the Service) and asks its node to drain — when a serving
 * peer can take its hand-off (`canHandOff`); otherwise it is asked once its queue is empty.
 */
export function startDrain(ctx: PlanContext, p: ObservedPod, reason: 'scale-down' | 'roll', canHandOff = true): void {
  const { out, now, desired } = ctx;
  out.patchPods.push({
    name: p.metadata.name,
    labels: { [LABEL_ROLE]: 'draining' },
    annotations: { [ANNOTATION_DRAINING_SINCE]: iso(now), [ANNOTATION_DRAIN_REASON]: reason },
  });
  out.events.push({ type: 'Normal', reason: 'Draining', message: `draining ${p.metadata.name} (${reason === 'roll' ? 'rolling to the new pod template' : `scaling down to ${desired}`})` });
  ctx.drainingFacts.push({ pod: p.metadata.name, reason, stalled: false });
  // Right after the relabel (the controller patches first): it has left the Service. A pod
  // without an address yet is asked once it has one (planDraining).
  const ip = p.status?.podIP;
  if (ip && canHandOff) out.drain.push({ pod: p.metadata.name, url: adminUrl(ip, '/drain') });
  ctx.requeue(POLL_MS);
}

/** The probe of this very pod (an answer recorded for an earlier pod of that name is not). */
function probeOf(ctx: PlanContext, p: ObservedPod): QueueProbe | undefined {
  const probe = ctx.observed.queues[p.metadata.name];
  return probe && probe.uid !== undefined && probe.uid !== p.metadata.uid ? undefined : probe;
}

const neverStarted = (p: ObservedPod): boolean => !p.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0 || c.ready);

/**
 * Follows the pods already draining: ask again, wait, or delete once drained. `servingPeers`:
 * serving pods with an address, which can take a draining node's hand-off. With none (the last
 * node of a MailCluster deleted with whenDeleted: Delete), a node that drains could only stop
 * delivering (a draining node hands off, it does not retry): it is left out of the Service,
 * delivers its queue on its own schedule, and is asked to drain once that queue is empty.
 */
export function planDraining(ctx: PlanContext, draining: Array<[number, ObservedPod]>, servingPeers = 1): void {
  const { out, name, spec, desired, now } = ctx;
  const drainTimeoutMs = parseDuration(spec.drainTimeout);
  for (const [i, p] of draining) {
    const pod = p.metadata.name;
    const reason = p.metadata.annotations?.[ANNOTATION_DRAIN_REASON] ?? (i >= desired ? 'scale-down' : 'roll');
    const elapsed = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAINING_SINCE], now) ?? 0;
    const stalled = elapsed > drainTimeoutMs;
    // Above the desired count the spool goes with the pod; below it a rolled pod's
    // successor at the same index mounts the spool again and delivers what is left.
    const spoolGoes = i >= desired;
    ctx.drainingFacts.push({ pod, reason, stalled: stalled && spoolGoes });
    ctx.requeue(POLL_MS);
    const ip = p.status?.podIP;
    const probe = probeOf(ctx, p);
    if (!ip) {
      // No address: the pod says nothing about its spool. Below the desired count a pod that
      // never started may be replaced (the spool stays); above it, wait for the address and drain.
      if (!spoolGoes && neverStarted(p)) {
        deletePod(out, name, i);
        out.events.push({ type: 'Normal', reason: 'Drained', message: `${pod} never started; replacing it, its spool stays` });
      } else if (stalled) {
        out.events.push({ type: 'Warning', reason: 'DrainStalled', message: `${pod} has no address after ${spec.drainTimeout}; its spool is kept until a node on it reports itself drained` });
      }
      continue;
    }
    if (spoolGoes) {
      if (deleteDrainedNode(out, name, i, p, probe, now)) {
        out.events.push({ type: 'Normal', reason: 'Drained', message: `${pod} reported itself drained; deleting it and its spool` });
        continue;
      }
      // Draining with mail and no serving peer left (they drained out first, as in a deleted
      // cluster's drain-out): it can hand nothing off, and a draining node does not deliver. Its
      // pod is replaced, the spool kept; the new node is not asked to drain until its queue is
      // empty (below), so it delivers what it holds.
      if (servingPeers === 0 && probe !== undefined && 'total' in probe && probe.draining === true && probe.total > 0) {
        deletePod(out, name, i);
        out.events.push({ type: 'Normal', reason: 'Recovering', message: `${pod} holds ${probe.total} messages and has no peer to hand them to; restarting it to deliver them itself (its spool stays)` });
        continue;
      }
    } else {
      const requestedAgo = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAIN_REQUESTED], now);
      const empty = probe !== undefined && 'total' in probe && (probe.drained === true || (requestedAgo !== undefined && probe.total === 0));
      if (empty || stalled) {
        deletePod(out, name, i);
        out.events.push(empty
          ? { type: 'Normal', reason: 'Drained', message: `${pod} has an empty queue; replacing it, its spool stays` }
          : { type: 'Warning', reason: 'DrainTimeout', message: `${pod} did not empty its queue within ${spec.drainTimeout}; replacing it, its spool stays with the new pod` });
        continue;
      }
    }
    const requestedAgo = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAIN_REQUESTED], now);
    const forgot = probe !== undefined && 'total' in probe && probe.draining === false; // restarted since
    const emptyNow = probe !== undefined && 'total' in probe && probe.total === 0;
    const mayAsk = servingPeers > 0 || emptyNow;
    if (mayAsk && (requestedAgo === undefined || requestedAgo >= DRAIN_REREQUEST_MS || forgot)) {
      out.drain.push({ pod, url: adminUrl(ip, '/drain') });
    }
    if (stalled) {
      const held = probe && 'total' in probe ? `${probe.total} messages` : `queue unknown (${probe && 'error' in probe ? probe.error : 'not asked yet'})`;
      out.events.push({ type: 'Warning', reason: 'DrainStalled', message: `${pod} still holds mail after ${spec.drainTimeout}: ${held}; keeping it` });
    }
  }
}

/**
 * Scale-down: every serving index at or above the desired count starts draining at once, each
 * handing its mail to the nodes that stay (`servingPeers`: the serving pods below the desired
 * count that have an address); so the nodes that stay serve the new peer list at once, and a
 * drain of three nodes takes as long as the slowest of them, not their sum. Each spool claim
 * still goes only once the node on it reported itself drained (claims.ts). A pod without an
 * address is drained once it has one (its spool may hold mail from an earlier pod).
 * Scaled to zero (a MailCluster deleted with whenDeleted: Delete) there is no node that
 * stays: the highest index drains first, handing off to the others, one at a time.
 */
export function planScaleDown(ctx: PlanContext, excess: Array<[number, ObservedPod]>, servingPeers: number): void {
  if (ctx.desired === 0) {
    startDrain(ctx, excess[0][1], 'scale-down', servingPeers > 0);
    return;
  }
  for (const [, p] of excess) startDrain(ctx, p, 'scale-down', servingPeers > 0);
}
