// The mail node's admin HTTP API, as the operator uses it: POST /drain and GET /queue, each
// with the cluster's admin token (BRIEF contract 1; GET /queue is open but shows more to it).
import type { QueueProbe } from './observed.ts';

export const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });

export async function requestDrain(url: string, token: string, timeoutMs = 5000): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: bearer(token), signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel();
  // 409 = already draining: the request is idempotent for us.
  if (!res.ok && res.status !== 409) throw new Error(`POST ${url}: HTTP ${res.status}`);
}

/** The queue size a node reports (GET /queue, JSON with `total`). */
export function parseQueue(body: unknown): number | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const total = (body as Record<string, unknown>).total;
  return typeof total === 'number' && Number.isFinite(total) && total >= 0 ? total : undefined;
}

/**
 * A GET /queue answer as a probe (contract 2). Defensive: only a boolean `true` is drained
 * (a missing or malformed `drained` is not), and `drained` with mail still counted is not.
 */
export function queueProbeOf(body: unknown, uid?: string): QueueProbe {
  const total = parseQueue(body);
  const withUid = uid ? { uid } : {};
  if (total === undefined) return { error: 'GET /queue: no total in the answer', ...withUid };
  const b = body as Record<string, unknown>;
  return {
    total,
    ...(typeof b.draining === 'boolean' ? { draining: b.draining } : {}),
    drained: b.drained === true && b.draining !== false && total === 0,
    ...withUid,
  };
}

/** Asks a node (the pod with UID `uid`) for its queue; never throws. */
export async function probeQueue(baseUrl: string, token: string, uid?: string, timeoutMs = 3000): Promise<QueueProbe> {
  const withUid = uid ? { uid } : {};
  try {
    const res = await fetch(`${baseUrl}/queue`, { headers: bearer(token), signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) { await res.body?.cancel(); return { error: `GET /queue: HTTP ${res.status}`, ...withUid }; }
    return queueProbeOf(await res.json(), uid);
  } catch (err) {
    return { error: `GET /queue: ${(err as Error).message}`, ...withUid };
  }
}
