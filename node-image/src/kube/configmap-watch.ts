// Watches one ConfigMap (the node's own) through the API server: a list by field selector
// `metadata.name=<name>`, then a watch from its resourceVersion (bookmarks on; 410 Gone relists).
// The Role the operator gives the node allows exactly this (get/list/watch with resourceNames:
// a list or watch is allowed by resourceNames only with that field selector).
// Errors (no token, 401/403, API server down, a dropped stream) end the connection; it is
// tried again with capped exponential backoff, forever. Whoever uses this keeps running from
// the mounted file meanwhile.
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Env } from '../config/load.ts';
import { inClusterAccess, NoApiAccess, type InClusterAccess } from './in-cluster.ts';

export interface ConfigMapObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

export interface ConfigMapWatchEvents {
  /** The ConfigMap as the API server has it now (from the list or a watch event). */
  content(cm: ConfigMapObject, from: 'list' | 'watch'): void;
  /** Connected and synced (true) or away (false), with the reason. */
  live(live: boolean, reason: string): void;
  /** The watch cannot start and retrying cannot help (no API server given). */
  disabled(reason: string): void;
}

export interface ConfigMapWatchOptions {
  env: Env;
  name: string;
  events: ConfigMapWatchEvents;
  /** First retry delay and cap (ms). */
  backoffMs?: { initial: number; max: number };
  /** Server-side watch timeout; a new watch then continues from the last resourceVersion. */
  watchTimeoutSeconds?: number;
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** The next retry delay: doubling from `initial`, capped, with up to 20% jitter. Pure apart from `random`. */
export function backoffDelay(failures: number, initial: number, max: number, random: () => number = Math.random): number {
  const base = Math.min(max, initial * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(base * (1 - 0.2 * random()));
}

export class ConfigMapWatch {
  private readonly o: ConfigMapWatchOptions;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private request: ReturnType<typeof https.request> | null = null;
  /** null until the first outcome, which is always reported. */
  private isLive: boolean | null = null;
  private resourceVersion = '';
  private wake: (() => void) | null = null;

  constructor(o: ConfigMapWatchOptions) {
    this.o = o;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    this.request?.destroy();
  }

  private setLive(live: boolean, reason: string): void {
    if (this.isLive === live) return;
    this.isLive = live;
    this.o.events.live(live, reason);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const access = inClusterAccess(this.o.env);
        await this.listAndWatch(access);
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof NoApiAccess && err.permanent) {
          this.setLive(false, err.message);
          this.o.events.disabled(err.message);
          return;
        }
        this.failures++;
        this.setLive(false, describe(err));
        const backoff = this.o.backoffMs ?? { initial: 500, max: 30_000 };
        await this.sleep(backoffDelay(this.failures, backoff.initial, backoff.max));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
      this.timer.unref();
    });
  }

  private path(a: InClusterAccess, query: Record<string, string>): string {
    const q = new URLSearchParams({ fieldSelector: `metadata.name=${this.o.name}`, ...query });
    return `/api/v1/namespaces/${encodeURIComponent(a.namespace)}/configmaps?${q}`;
  }

  private async listAndWatch(a: InClusterAccess): Promise<void> {
    const list = JSON.parse(await this.get(a, this.path(a, {}), 10_000)) as { metadata?: { resourceVersion?: string }; items?: ConfigMapObject[] };
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    const cm = list.items?.[0];
    if (!cm) throw new Error(`configmap ${a.namespace}/${this.o.name} not found`);
    this.failures = 0;
    this.o.events.content(cm, 'list');
    this.setLive(true, 'listed');
    // Watch until an error; a watch that ends at its timeout is simply started again.
    while (!this.stopped) {
      const started = Date.now();
      const outcome = await this.watch(a);
      if (outcome === 'relist') return this.listAndWatch(a);
      // A watch that the server ends at once, again and again, must not become a busy loop.
      if (Date.now() - started < 1000) await this.sleep(1000);
    }
  }

  /** One GET, whole body; rejects with HttpError on a non-2xx status. */
  private get(a: InClusterAccess, path: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = this.open(a, path, timeoutMs, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 300) reject(httpError(res.statusCode ?? 0, body));
          else resolve(body);
        });
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  private open(a: InClusterAccess, path: string, timeoutMs: number, onResponse: (res: IncomingMessage) => void) {
    const req = https.request({
      host: a.host, port: a.port, path, method: 'GET', ca: a.ca,
      headers: { Authorization: `Bearer ${a.token}`, Accept: 'application/json', 'User-Agent': 'mailcluster-node' },
      timeout: timeoutMs,
    }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer from the API server in ${timeoutMs} ms`)));
    req.on('socket', (s) => s.setKeepAlive(true, 10_000));
    this.request = req;
    req.end();
    return req;
  }

  /** One watch request from this.resourceVersion: 'again' when it ended normally, 'relist' on 410. */
  private watch(a: InClusterAccess): Promise<'again' | 'relist'> {
    const timeoutSeconds = this.o.watchTimeoutSeconds ?? 240;
    const path = this.path(a, { watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds), resourceVersion: this.resourceVersion });
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: Error | null, outcome: 'again' | 'relist' = 'again') => {
        if (settled) return;
        settled = true;
        if (err) reject(err); else resolve(outcome);
      };
      // No byte for this long (bookmarks come about once a minute) means a dead connection.
      const req = this.open(a, path, (timeoutSeconds + 90) * 1000, (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => done(httpError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          return;
        }
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (!line) continue;
            const outcome = this.event(a, line);
            if (outcome === 'relist') { done(null, 'relist'); req.destroy(); return; }
            if (outcome instanceof Error) { done(outcome); req.destroy(); return; }
          }
        });
        res.on('end', () => done(null));
        res.on('error', (err) => done(err));
        res.on('close', () => done(new Error('watch stream closed')));
      });
      req.on('error', (err) => done(err));
    });
  }

  private event(a: InClusterAccess, line: string): 'relist' | Error | undefined {
    let ev: { type?: string; object?: ConfigMapObject & { code?: number; message?: string } };
    try {
      ev = JSON.parse(line);
    } catch {
      return new Error(`unreadable watch event: ${line.slice(0, 200)}`);
    }
    const rv = ev.object?.metadata?.resourceVersion;
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED':
        if (rv) this.resourceVersion = rv;
        this.o.events.content(ev.object!, 'watch');
        this.setLive(true, 'watch event');
        return undefined;
      case 'BOOKMARK':
        if (rv) this.resourceVersion = rv;
        return undefined;
      case 'DELETED':
        // The node keeps its running config; the operator writes it again.
        if (rv) this.resourceVersion = rv;
        this.setLive(false, `configmap ${a.namespace}/${this.o.name} deleted`);
        return undefined;
      case 'ERROR':
        if (ev.object?.code === 410) return 'relist';
        return new Error(`watch error ${ev.object?.code ?? ''}: ${ev.object?.message ?? line.slice(0, 200)}`);
      default:
        return undefined;
    }
  }
}

function httpError(status: number, body: string): HttpError {
  let message = body.slice(0, 300);
  try { message = (JSON.parse(body) as { message?: string }).message ?? message; } catch { /* not a Status */ }
  return new HttpError(status, `API server answered ${status}: ${message}`);
}

function describe(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}
