// The admin credential check of BRIEF contract 1, minimal (sec-node builds the full guard;
// the lead reconciles the two). `Authorization: Bearer <token>`; the node knows only the
// SHA-256 of the token (`PARAM admin-token-sha256`) and compares digests in constant time.
// No digest configured: 403 (secure by default). Missing or wrong credential: 401 with
// `WWW-Authenticate: Bearer`.
// Addition (recommended to the lead for DESIGN.md): the same `Bearer <token>` value is also
// taken from `X-Mailcluster-Admin-Authorization` when `Authorization` is absent, because the
// Kubernetes API server's pod proxy (`/api/v1/namespaces/NS/pods/NAME:8025/proxy/...`)
// deletes the `Authorization` header after authenticating the caller, and that proxy is
// how `kubectl mailcluster` reaches a node on a real cluster.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AdminHandler } from './server.ts';
import { sendJson } from './server.ts';

/** The header that carries the admin credential through the API server's pod proxy. */
export const PROXY_AUTH_HEADER = 'x-mailcluster-admin-authorization';

export type AdminAuthVerdict =
  | { ok: true }
  | { ok: false; status: 401 | 403; error: string };

/** Decides one request's credential (pure): the Authorization header against the expected digest. */
export function checkAdminCredential(authorization: string | undefined, expectedSha256Hex: string | null): AdminAuthVerdict {
  if (!expectedSha256Hex || !/^[0-9a-f]{64}$/i.test(expectedSha256Hex)) {
    return { ok: false, status: 403, error: 'admin endpoints are disabled: no PARAM admin-token-sha256 configured' };
  }
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  if (!m) return { ok: false, status: 401, error: 'admin credential required (Authorization: Bearer <token>)' };
  const given = createHash('sha256').update(m[1], 'utf8').digest();
  const expected = Buffer.from(expectedSha256Hex, 'hex');
  if (!timingSafeEqual(given, expected)) return { ok: false, status: 401, error: 'admin credential refused' };
  return { ok: true };
}

/** Wraps a handler so it runs only for a request with the admin credential. */
export type Protect = (handler: AdminHandler) => AdminHandler;

/** A `protect` that reads the expected digest at each request (config reloads apply at once). */
export function bearerGuard(expectedSha256Hex: () => string | null): Protect {
  return (handler) => (req: IncomingMessage, res, body) => {
    const viaProxy = req.headers[PROXY_AUTH_HEADER];
    const authorization = req.headers.authorization ?? (typeof viaProxy === 'string' ? viaProxy : undefined);
    const verdict = checkAdminCredential(authorization, expectedSha256Hex());
    if (!verdict.ok) {
      if (verdict.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="mailcluster-admin"');
      return sendJson(res, verdict.status, { error: verdict.error });
    }
    return handler(req, res, body);
  };
}
