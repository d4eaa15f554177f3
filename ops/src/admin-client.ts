// HTTP to one node's admin port: directly (`http://<pod IP>:8025`, from inside the cluster
// network) or through the Kubernetes API server's pod proxy
// (`<server>/api/v1/namespaces/NS/pods/NAME:8025/proxy`), which authenticates us with the
// kubeconfig's credentials and strips our `Authorization` header; there the admin token
// travels in `X-Mailcluster-Admin-Authorization` (see node-image/src/admin/auth.ts).
import http from 'node:http';
import https from 'node:https';
import { PROXY_AUTH_HEADER } from '../../node-image/src/admin/auth.ts';

export interface AdminEndpoint {
  /** Shown in output: the pod's name, or the URL. */
  name: string;
  /** Base URL without a trailing slash; API paths are appended. */
  baseUrl: string;
  /** TLS and extra headers (the API server's CA, client certificate, bearer token). */
  requestOptions?: https.RequestOptions;
  /** Header that carries `Bearer <admin token>`. */
  credentialHeader: 'authorization' | typeof PROXY_AUTH_HEADER;
}

export interface AdminResponse {
  status: number;
  text: string;
  /** The parsed body when it is JSON, else null. */
  json: unknown;
}

export function directEndpoint(name: string, url: string): AdminEndpoint {
  return { name, baseUrl: url.replace(/\/+$/, ''), credentialHeader: 'authorization' };
}

/** The pod-proxy base URL of a pod's admin port (pure). */
export function podProxyUrl(server: string, namespace: string, pod: string, port = 8025): string {
  return `${server.replace(/\/+$/, '')}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}:${port}/proxy`;
}

/** One admin request; rejects only on network errors (HTTP errors come back as a status). */
export function adminCall(ep: AdminEndpoint, token: string | undefined, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<AdminResponse> {
  const url = new URL(ep.baseUrl + path);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const base = ep.requestOptions ?? {};
  const headers: Record<string, string> = { ...(base.headers as Record<string, string> | undefined), accept: 'application/json' };
  if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = String(payload.length); }
  if (token) headers[ep.credentialHeader] = `Bearer ${token}`;
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { ...base, method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${ep.name}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new Error(`${ep.name}: ${err.message}`)));
    req.end(payload);
  });
}

/** The error a failed admin call means to a person. */
export function explainStatus(ep: AdminEndpoint, r: AdminResponse): string {
  const detail = (r.json as { error?: string } | null)?.error ?? (r.text.trim().slice(0, 200) || `HTTP ${r.status}`);
  if (r.status === 401) return `${ep.name}: admin credential refused (401): ${detail}`;
  if (r.status === 403) return `${ep.name}: forbidden (403): ${detail}`;
  return `${ep.name}: HTTP ${r.status}: ${detail}`;
}
