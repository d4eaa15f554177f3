// Creating: pods (and their spool claims) missing below the desired count, and pods brought
// back for spool claims above it that were never drained.
import { indexOf } from '../resources/labels.ts';
import { podName, spoolClaimName } from '../resources/names.ts';
import { buildPod } from '../resources/pod.ts';
import { buildSpoolClaim } from '../resources/pvc.ts';
import { isTerminating, POLL_MS, type PlanContext, type PodView } from './plan_context.ts';

export interface Creation {
  /** Indices below the desired count without a pod. */
  missing: number[];
  /** Indices whose pod this plan creates. */
  creating: number[];
}

export function planCreate(ctx: PlanContext, pods: PodView): Creation {
  const { observed, cluster, name, spec, desired, out, tlsProblem } = ctx;
  const claimNames = new Set(observed.claims.filter((c) => !isTerminating(c)).map((c) => c.metadata.name));
  const claimsGoing = new Set(observed.claims.filter(isTerminating).map((c) => c.metadata.name));
  const missing: number[] = [];
  const creating: number[] = [];
  for (let i = 0; i < desired; i++) {
    if (pods.byIndex.has(i)) continue; // a terminating pod at i is waited for, not replaced
    missing.push(i);
    if (tlsProblem) continue;
    // A spool claim still being deleted (scaled down, then up again) is waited for too.
    if (claimsGoing.has(spoolClaimName(name, i))) { ctx.requeue(POLL_MS); continue; }
    creating.push(i);
    if (!claimNames.has(spoolClaimName(name, i))) out.apply.push(buildSpoolClaim(cluster, spec, i));
    out.apply.push(buildPod(cluster, spec, i));
  }
  if (creating.length > 0) {
    out.events.push({ type: 'Normal', reason: 'CreatingNodes', message: `creating ${creating.map((i) => podName(name, i)).join(', ')} (${desired} replicas)` });
  }
  // A spool claim above the desired count with no pod means its pod went away undrained
  // (deleted by hand mid scale-down): bring it back as draining, so its mail is handed off.
  for (const claim of observed.claims) {
    const i = indexOf(claim);
    if (i === undefined || i < desired || pods.byIndex.has(i) || isTerminating(claim) || tlsProblem) continue;
    if (claim.metadata.name !== spoolClaimName(name, i)) continue;
    out.apply.push(buildPod(cluster, spec, i, 'draining'));
    creating.push(i);
    out.events.push({ type: 'Normal', reason: 'Recovering', message: `${podName(name, i)} went away before it was drained; starting it again to drain its spool` });
  }
  return { missing, creating };
}
