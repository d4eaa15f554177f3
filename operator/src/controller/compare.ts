// Whether an observed object already holds everything a desired one sets. Server-side
// defaults (nodePorts, clusterIP, …) are extra fields and do not count as a difference,
// so a converged cluster produces no writes.
export function containsDesired(desired: unknown, observed: unknown): boolean {
  if (desired === undefined) return true;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return false;
    return desired.every((d, i) => containsDesired(d, observed[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (observed === null || typeof observed !== 'object' || Array.isArray(observed)) return false;
    const o = observed as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => containsDesired(v, o[k]));
  }
  return desired === observed;
}

/** containsDesired for whole objects: list responses carry no apiVersion/kind per item. */
export function objectContainsDesired(desired: { apiVersion?: string; kind?: string }, observed: unknown): boolean {
  const { apiVersion: _a, kind: _k, ...rest } = desired;
  return containsDesired(rest, observed);
}
