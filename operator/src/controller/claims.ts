// Spool claims: where the mail lives, so the unit of safety. Every deletion of a spool claim
// goes through `deleteDrainedNode`, and it deletes one only when `drainedOnClaim` holds:
//
//   a claim is deleted only after a node running on that very claim reported itself drained.
//
// "That very claim": the probe was made of this pod (same UID, so not an earlier pod of the
// same name), and this pod's spec mounts this claim. "Drained": GET /queue answered
// `drained: true` (listener closed, no open session, nothing queued, held mail included) and
// a total of 0. A pod that is gone, Pending or without an address has said nothing about its
// claim, so nothing here lets its claim go: the planner starts it and drains it instead.
import { indexOf } from '../resources/labels.ts';
import { podName, spoolClaimName } from '../resources/names.ts';
import { disownedSpoolClaim } from '../resources/pvc.ts';
import type { ObservedPod, QueueProbe } from './observed.ts';
import { isTerminating, type DeleteRequest, type PlanContext } from './plan_context.ts';

/** True when `pod` mounts `claim` as a volume. */
export function mountsClaim(pod: ObservedPod, claim: string): boolean {
  return (pod.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim);
}

/**
 * How old a drained answer may be when it lets a claim go. Answers come from background probes
 * (queue-prober.ts) refreshed every POLL_MS while a pod drains, and a drained answer queues its
 * cluster at once, so a fresh one is normally under a second old. Once a node said drained its
 * listener is closed and no session is open: mail can reach its spool again only through a new
 * process (a container restart, which `restarts` catches as soon as the pod's status shows it)
 * or a new pod (another UID). The age bound covers the time the pod's status takes to show a
 * restart; it is about what the synchronous probe allowed before (its 3 s timeout plus the
 * writes before the delete), so the invariant is no weaker than it was.
 */
export const DRAIN_ANSWER_MAX_AGE_MS = 5_000;

/** The sum of a pod's container restart counts. */
export function restartsOf(pod: { status?: { containerStatuses?: Array<{ restartCount?: number }> } }): number {
  return (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
}

/**
 * The invariant: the node running on `claim` (in `pod`) reported itself drained, recently
 * (asked at most DRAIN_ANSWER_MAX_AGE_MS before `now`) and in the process still running
 * (the pod's restart count is the one seen when it was asked).
 */
export function drainedOnClaim(claim: string, pod: ObservedPod, probe: QueueProbe | undefined, now: Date): boolean {
  if (!probe || !('total' in probe)) return false; // not asked, or no answer: says nothing
  if (!pod.metadata.uid || probe.uid !== pod.metadata.uid) return false; // another pod's answer
  if (!mountsClaim(pod, claim)) return false; // that node does not run on this claim
  if (probe.askedAt === undefined || now.getTime() - probe.askedAt > DRAIN_ANSWER_MAX_AGE_MS) return false; // too old to vouch
  if (probe.restarts === undefined || probe.restarts !== restartsOf(pod)) return false; // said by an earlier process
  return probe.drained === true && probe.total === 0;
}

/** Deletes a pod and keeps its spool claim (a rolled pod's successor mounts it again). */
export function deletePod(out: { delete: DeleteRequest[] }, cluster: string, index: number): void {
  out.delete.push({ apiVersion: 'v1', kind: 'Pod', name: podName(cluster, index) });
}

/**
 * Deletes a pod together with its spool claim when, and only when, `drainedOnClaim` proves
 * the claim empty. Returns whether it did; when it did not, nothing is deleted.
 */
export function deleteDrainedNode(out: { delete: DeleteRequest[] }, cluster: string, index: number, pod: ObservedPod, probe: QueueProbe | undefined, now: Date): boolean {
  const claim = spoolClaimName(cluster, index);
  if (!drainedOnClaim(claim, pod, probe, now)) return false;
  // The claim first: its in-use protection holds it until the pod is gone, and an operator
  // restart in between finds a claim being deleted rather than an undrained one.
  out.delete.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: claim });
  deletePod(out, cluster, index);
  return true;
}

/**
 * Claims carry no owner reference (pvc.ts): one that still has one (made by an earlier
 * operator version) is applied again without it, so deleting the MailCluster cannot take it.
 */
export function planClaimOwnership(ctx: PlanContext): void {
  for (const claim of ctx.observed.claims) {
    const i = indexOf(claim);
    if (i === undefined || claim.metadata.name !== spoolClaimName(ctx.name, i) || isTerminating(claim)) continue;
    if ((claim.metadata.ownerReferences ?? []).length === 0) continue;
    ctx.out.apply.push(disownedSpoolClaim(ctx.cluster, ctx.spec, i, claim as Parameters<typeof disownedSpoolClaim>[3]));
  }
}
