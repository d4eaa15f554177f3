// The admin credential (BRIEF contract 1): `Authorization: Bearer <token>`, checked as
// sha256(token) against PARAM admin-token-sha256 with timingSafeEqual. The node never holds
// the token itself. Pure decision + one wrapper, used by every protected route.
// The same `Bearer <token>` value is also taken from `X-Mailcluster-Admin-Authorization` when
// `Authorization` is absent: the Kubernetes API server's pod proxy
// (`/api/v1/namespaces/NS/pods/NAME:8025/proxy/...`) deletes `Authorization` after
// authenticating the caller, and that proxy is how `kubectl mailcluster` reaches a node.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The header that carries the admin credential through the API server's pod proxy. */
export const PROXY_AUTH_HEADER = 'x-mailcluster-admin-authorization';

export type AdminAuthDecision =
  | { ok: true }
  /** 403: no credential configured, so nothing is allowed (secure by default). */
  | { ok: false; status: 403; error: string }
  /** 401: missing or wrong credential. */
  | { ok: false; status: 401; error: string };

/** Decides a request's Authorization header against the configured digest (hex) or null. */
export function decideAdminAuth(authorization: string | undefined, digestHex: string | null): AdminAuthDecision {
  if (digestHex === null) return { ok: false, status: 403, error: 'admin credential not configured on this node (PARAM admin-token-sha256)' };
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  if (!m) return { ok: false, status: 401, error: 'admin credential required (Authorization: Bearer <token>)' };
  const got = createHash('sha256').update(m[1], 'utf8').digest();
  const want = Buffer.from(digestHex, 'hex');
  if (want.length !== got.length || !timingSafeEqual(got, want)) return { ok: false, status: 401, error: 'wrong admin credential' };
  return { ok: true };
}

/** Answers a refused request: 401 carries `WWW-Authenticate: Bearer`. */
export function sendAdminRefusal(res: ServerResponse, d: Exclude<AdminAuthDecision, { ok: true }>): void {
  const body = JSON.stringify({ error: d.error }) + '\n';
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (d.status === 401) headers['www-authenticate'] = 'Bearer realm="mailcluster-admin"';
  res.writeHead(d.status, headers);
  res.end(body);
}

/** The credential a request carries: `Authorization`, else the pod-proxy header. */
export function adminCredentialHeader(req: IncomingMessage): string | undefined {
  if (req.headers.authorization !== undefined) return req.headers.authorization;
  const viaProxy = req.headers[PROXY_AUTH_HEADER];
  return typeof viaProxy === 'string' ? viaProxy : undefined;
}

/** True when the request may go on; otherwise it has been answered (401/403). */
export function checkAdmin(req: IncomingMessage, res: ServerResponse, digestHex: string | null): boolean {
  const d = decideAdminAuth(adminCredentialHeader(req), digestHex);
  if (d.ok) return true;
  sendAdminRefusal(res, d);
  return false;
}
