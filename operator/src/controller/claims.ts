// Spool claims: where the mail lives. Every deletion of a claim goes through here.
import { podName, spoolClaimName } from '../resources/names.ts';
import type { Plan } from './plan_context.ts';

export function deletePod(out: Plan, cluster: string, index: number, keepSpool: boolean): void {
  // The claim first: its in-use protection holds it until the pod is gone, and an operator
  // restart in between finds a claim being deleted rather than an undrained one.
  if (!keepSpool) out.delete.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: spoolClaimName(cluster, index) });
  out.delete.push({ apiVersion: 'v1', kind: 'Pod', name: podName(cluster, index) });
}
