// The mail node's admin HTTP API, as the operator uses it: POST /drain and GET /queue.
import type { QueueProbe } from './observed.ts';

export async function requestDrain(url: string, timeoutMs = 5000): Promise<void> {
  const res = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(timeoutMs) });
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

export async function probeQueue(baseUrl: string, timeoutMs = 3000): Promise<QueueProbe> {
  try {
    const res = await fetch(`${baseUrl}/queue`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) { await res.body?.cancel(); return { error: `GET /queue: HTTP ${res.status}` }; }
    const body = await res.json() as Record<string, unknown>;
    const total = parseQueue(body);
    if (total === undefined) return { error: 'GET /queue: no total in the answer' };
    return typeof body.draining === 'boolean' ? { total, draining: body.draining } : { total };
  } catch (err) {
    return { error: `GET /queue: ${(err as Error).message}` };
  }
}
