// CrashLoopBackOff timing: the first restart is immediate, then the delay doubles from
// `initialMs` up to `maxMs`; a container that ran for `resetAfterMs` starts over.
export interface BackoffPolicy { initialMs: number; maxMs: number; resetAfterMs: number }

export const defaultBackoff: BackoffPolicy = { initialMs: 1000, maxMs: 60_000, resetAfterMs: 120_000 };

/** The delay before the next restart, given the previous delay (undefined: none yet) and how long the last run lasted. */
export function nextRestartDelay(policy: BackoffPolicy, previousMs: number | undefined, ranForMs: number): number {
  if (previousMs === undefined || ranForMs >= policy.resetAfterMs) return 0;
  if (previousMs === 0) return policy.initialMs;
  return Math.min(previousMs * 2, policy.maxMs);
}
