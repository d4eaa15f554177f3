// Admin HTTP on BindAdmin: /healthz, /readyz, /metrics, GET /queue, and routes that other
// parts register (POST /drain). Routes registered with protectedRoute need the admin
// credential (admin/auth.ts, BRIEF contract 1); route() is for the open, read-only ones.
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import { checkAdmin } from './auth.ts';

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>;

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class AdminServer {
  private routes = new Map<string, AdminHandler>();
  private protectedKeys = new Set<string>();
  /** The configured admin-token digest (hex), read per request so reloads apply. */
  private adminDigest: () => string | null = () => null;
  private server: http.Server;
  private bound: { address: string; port: number } | null = null;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
    this.server = this.create();
  }

  /** Registers (or replaces) an OPEN route: read-only, no message data (healthz, metrics, queue counts). */
  route(method: string, path: string, handler: AdminHandler): void {
    const key = `${method.toUpperCase()} ${path}`;
    this.routes.set(key, handler);
    this.protectedKeys.delete(key);
  }

  /**
   * Registers a route that needs `Authorization: Bearer <admin token>`: every state-changing
   * endpoint and every one that shows message data. Checked before the body is read;
   * 401 (+ WWW-Authenticate) on a missing/wrong token, 403 when no token is configured.
   */
  protectedRoute(method: string, path: string, handler: AdminHandler): void {
    const key = `${method.toUpperCase()} ${path}`;
    this.routes.set(key, handler);
    this.protectedKeys.add(key);
  }

  /** Where the guard reads the configured digest (the node passes its live config). */
  setAdminCredential(digest: () => string | null): void {
    this.adminDigest = digest;
  }

  private create(): http.Server {
    return http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const key = `${req.method} ${path}`;
      const handler = this.routes.get(key);
      if (!handler) {
        const known = [...this.routes.keys()].some((k) => k.endsWith(` ${path}`));
        return sendJson(res, known ? 405 : 404, { error: known ? 'method not allowed' : 'not found' });
      }
      if (this.protectedKeys.has(key) && !checkAdmin(req, res, this.adminDigest())) {
        this.log.warn({ event: 'admin', method: req.method, path, client: req.socket.remoteAddress, status: res.statusCode }, 'admin request refused');
        req.resume();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => { size += c.length; if (size <= 1 << 20) chunks.push(c); });
      req.on('end', () => {
        Promise.resolve(handler(req, res, Buffer.concat(chunks))).catch((err: Error) => {
          this.log.error({ event: 'admin', path, err: err.message }, 'admin request failed');
          if (!res.headersSent) sendJson(res, 500, { error: err.message });
          else res.end();
        });
      });
    });
  }

  async listen(bind: { address: string; port: number }): Promise<void> {
    if (this.bound && this.bound.address === bind.address && this.bound.port === bind.port) return;
    const next = this.bound ? this.create() : this.server;
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(bind.port, bind.address, () => { next.off('error', reject); resolve(); });
    });
    if (next !== this.server) { this.server.close(); this.server = next; }
    this.bound = bind;
    this.log.info({ event: 'listen', service: 'admin', address: bind.address, port: (next.address() as net.AddressInfo).port }, 'admin HTTP listening');
  }

  get address(): net.AddressInfo | null {
    return this.server.address() as net.AddressInfo | null;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
