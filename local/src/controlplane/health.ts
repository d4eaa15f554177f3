// Health checks of the control plane's components over their real HTTP(S) endpoints.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';

export interface TlsClient {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** For components that serve a self-signed certificate of their own (controller-manager). */
  insecure?: boolean;
}

/** One GET; resolves with the status and body, or rejects on a connection error/timeout. */
export function get(url: string, tls: TlsClient = {}, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const options = {
      method: 'GET',
      timeout: timeoutMs,
      ...(u.protocol === 'https:' ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure } : {}),
    };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls url until it answers 200 (and `accept(body)`), the deadline passes, or `abort`
 * settles first (the component exited): then it rejects with what it last saw.
 */
export async function waitHealthy(args: {
  url: string;
  tls?: TlsClient;
  timeoutMs: number;
  abort?: Promise<unknown>;
  accept?: (body: string) => boolean;
  intervalMs?: number;
}): Promise<void> {
  const deadline = Date.now() + args.timeoutMs;
  let last = 'no answer yet';
  let aborted = false;
  void args.abort?.then(() => (aborted = true));
  for (;;) {
    if (aborted) throw new Error(`exited before ${args.url} was healthy (last: ${last})`);
    try {
      const res = await get(args.url, args.tls);
      if (res.status === 200 && (args.accept?.(res.body) ?? true)) return;
      last = `${res.status} ${res.body.slice(0, 500)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${args.url} not healthy after ${args.timeoutMs} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, args.intervalMs ?? 200));
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether port on 127.0.0.1 can be bound now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
