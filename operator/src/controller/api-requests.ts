// Counts every request the operator sends to the API server, by verb, resource and answer code
// (mailcluster_operator_api_requests_total), at the one place all of them pass: the HTTP client
// underneath client-node (undici), through its diagnostics channels. Generated API clients,
// the object API, informers' lists and watches, leader election and events all go through it,
// so nothing has to remember to count. Requests to other origins (the nodes' admin ports)
// are not the API server's and are left out. Verbs are named as the API server names them in
// apiserver_request_total (list/watch/get, apply for server-side apply), so both can be compared.
import diagnosticsChannel from 'node:diagnostics_channel';

export interface ApiRequest { verb: string; resource: string }

/** The API server's verb and resource (`pods`, `mailclusters/status`) of a request. Pure. */
export function apiRequestOf(method: string, path: string, contentType = ''): ApiRequest {
  const [pathname, query = ''] = path.split('?');
  const seg = pathname.split('/').filter((s) => s.length > 0);
  // /api/v1/... or /apis/<group>/<version>/...
  let rest = seg[0] === 'api' ? seg.slice(2) : seg[0] === 'apis' ? seg.slice(3) : [];
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource = 'unknown', name, sub] = rest;
  const label = sub ? `${resource}/${sub}` : resource;
  const params = new URLSearchParams(query);
  const m = method.toUpperCase();
  let verb: string;
  if (m === 'GET') verb = params.get('watch') === 'true' || params.get('watch') === '1' ? 'watch' : name ? 'get' : 'list';
  else if (m === 'POST') verb = 'create';
  else if (m === 'PUT') verb = 'update';
  else if (m === 'PATCH') verb = contentType.includes('apply-patch') ? 'apply' : 'patch';
  else if (m === 'DELETE') verb = name ? 'delete' : 'deletecollection';
  else verb = m.toLowerCase();
  return { verb, resource: label };
}

interface UndiciRequest { origin?: string | URL; method?: string; path?: string; headers?: unknown }

function contentTypeOf(headers: unknown): string {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'content-type') return String(headers[i + 1]);
    return '';
  }
  if (typeof headers === 'string') return /content-type:\s*([^\r\n]*)/i.exec(headers)?.[1] ?? '';
  return '';
}

/**
 * Calls `count(verb, resource, code)` once per request to `server` (its origin), when the answer's
 * status line arrives, or with code `error` when the request failed before one did. Returns the
 * function that stops counting. Every client in this process talking to that origin is counted.
 */
export function countApiRequests(server: string, count: (r: ApiRequest & { code: string }) => void): () => void {
  const origin = new URL(server).origin;
  const answered = new WeakSet<object>();
  const ours = (req: UndiciRequest): boolean => {
    try { return req.origin !== undefined && new URL(String(req.origin)).origin === origin; } catch { return false; }
  };
  const describe = (req: UndiciRequest): ApiRequest => apiRequestOf(req.method ?? 'GET', req.path ?? '/', contentTypeOf(req.headers));
  const onHeaders = (message: unknown): void => {
    const { request, response } = message as { request: UndiciRequest; response: { statusCode: number } };
    if (!ours(request) || answered.has(request)) return;
    answered.add(request);
    count({ ...describe(request), code: String(response.statusCode) });
  };
  const onError = (message: unknown): void => {
    const { request } = message as { request: UndiciRequest };
    if (!ours(request) || answered.has(request)) return;
    answered.add(request);
    count({ ...describe(request), code: 'error' });
  };
  diagnosticsChannel.subscribe('undici:request:headers', onHeaders);
  diagnosticsChannel.subscribe('undici:request:error', onError);
  return () => {
    diagnosticsChannel.unsubscribe('undici:request:headers', onHeaders);
    diagnosticsChannel.unsubscribe('undici:request:error', onError);
  };
}
