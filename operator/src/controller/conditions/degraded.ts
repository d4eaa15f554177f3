// Degraded: something needs attention — a spec the schema admits but that cannot work (a
// missing TLS Secret), failing pods, a drain past drainTimeout, or failing reconciles.
import type { ComputedCondition } from './condition.ts';
import type { ClusterFacts } from './facts.ts';

export function degradedCondition(f: ClusterFacts): ComputedCondition {
  const t = 'Degraded' as const;
  if (f.tlsProblem) {
    const why = f.tlsProblem.reason === 'TLSSecretMissing' ? 'does not exist' : 'lacks tls.crt or tls.key';
    return { type: t, status: 'True', reason: f.tlsProblem.reason, message: `TLS Secret ${f.tlsProblem.secret} ${why}; no new nodes are started until it is fixed` };
  }
  const stalled = f.draining.filter((d) => d.stalled);
  if (stalled.length > 0) {
    return { type: t, status: 'True', reason: 'DrainStalled', message: `${stalled.map((d) => d.pod).join(', ')} still hold mail after drainTimeout; kept until their queues are empty` };
  }
  if (f.failing.length > 0) {
    return { type: t, status: 'True', reason: 'NodesFailing', message: f.failing.map((x) => `${x.pod}: ${x.reason}`).join('; ') };
  }
  if (f.lastError) return { type: t, status: 'True', reason: 'ReconcileError', message: f.lastError };
  return { type: t, status: 'False', reason: 'AsExpected', message: 'no problems found' };
}
