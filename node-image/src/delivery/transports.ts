// Outbound SMTP connections, reused per destination address:port: a small pool of
// nodemailer SMTPConnection objects each (nodemailer's SMTP client, which pipelines the
// envelope). The raw spooled message goes out as is: no MIME composing, no stream
// pipeline per message, which is most of nodemailer's per-message cost in a relay. A large
// message is streamed from its spool blob file (message-content.ts).
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { installFastDataStream } from './fast-data-stream.ts';
import { messageBody } from './message-content.ts';
import type { MessageContent } from './message-content.ts';
import { levelForDomain, tlsConnectionOptions } from './tls-policy.ts';
import type { OutboundTlsSettings } from './tls-policy.ts';
import type { TlsSecurityLevel } from '../config/security.ts';

await installFastDataStream();

export interface TransportSettings {
  hostname: string;
  localAddress?: string;
  maxConnectionsPerDestination: number;
  connectionTimeoutMs: number;
  socketTimeoutMs: number;
  /** Per-destination TLS policy (PARAM smtp-tls-*); absent: `may`. */
  tls?: OutboundTlsSettings;
}

export interface SendResult {
  accepted: string[];
  rejected: { address: string; code: number; response: string }[];
  response: string;
}

/** Sends one SMTP transaction to one destination address (in this thread or the delivery thread). */
export interface Sender {
  /** `domain`: the recipients' domain, for the per-destination TLS policy. */
  send(address: string, port: number, servername: string, from: string, to: string[], content: MessageContent, messageId?: string, domain?: string): Promise<SendResult>;
  configure(settings: TransportSettings): void;
  close(): void;
}

type SmtpError = Error & { code?: string; originalCode?: string; responseCode?: number; response?: string; rejectedErrors?: Array<{ recipient: string; responseCode?: number; response?: string }> };

const MAX_MESSAGES_PER_CONNECTION = 1000;

interface PooledConnection {
  conn: SMTPConnection;
  messages: number;
  alive: boolean;
  idleTimer: NodeJS.Timeout | null;
}

class Destination {
  private idle: PooledConnection[] = [];
  private count = 0;
  private waiters: Array<{ resolve: (c: PooledConnection) => void; reject: (e: Error) => void }> = [];
  lastUsed = Date.now();
  active = 0;
  private readonly address: string;
  private readonly port: number;
  private readonly servername: string;
  private readonly settings: TransportSettings;
  private readonly idleMs: number;
  private readonly tlsLevel: TlsSecurityLevel;

  constructor(address: string, port: number, servername: string, settings: TransportSettings, idleMs: number, tlsLevel: TlsSecurityLevel = 'may') {
    this.tlsLevel = tlsLevel;
    this.address = address;
    this.port = port;
    this.servername = servername;
    this.settings = settings;
    this.idleMs = idleMs;
  }

  private open(): Promise<PooledConnection> {
    const s = this.settings;
    const conn = new SMTPConnection({
      host: this.address,
      port: this.port,
      secure: false,
      name: s.hostname,
      localAddress: s.localAddress,
      connectionTimeout: s.connectionTimeoutMs,
      greetingTimeout: s.connectionTimeoutMs,
      socketTimeout: s.socketTimeoutMs,
      // the destination's TLS level (delivery/tls-policy.ts); `may` is opportunistic as MTAs do
      ...tlsConnectionOptions(this.tlsLevel, this.servername, s.tls?.ca),
      logger: false,
    } as ConstructorParameters<typeof SMTPConnection>[0]);
    this.count++;
    const pooled: PooledConnection = { conn, messages: 0, alive: true, idleTimer: null };
    const gone = () => {
      if (!pooled.alive) return;
      pooled.alive = false;
      this.count--;
      if (pooled.idleTimer) clearTimeout(pooled.idleTimer);
      this.idle = this.idle.filter((p) => p !== pooled);
      this.wakeWaiter();
    };
    return new Promise((resolve, reject) => {
      let settled = false;
      conn.on('error', (err: Error) => {
        gone();
        if (!settled) { settled = true; reject(tlsFailureIsTemporary(err, this.tlsLevel)); }
      });
      conn.on('end', gone);
      conn.connect(() => {
        if (!settled) { settled = true; resolve(pooled); }
      });
    });
  }

  // a connection freed up (or died): let a waiter open or take one
  private wakeWaiter(): void {
    const w = this.waiters.shift();
    if (!w) return;
    this.acquire().then(w.resolve, w.reject);
  }

  acquire(): Promise<PooledConnection> {
    const p = this.idle.pop();
    if (p) {
      if (p.idleTimer) { clearTimeout(p.idleTimer); p.idleTimer = null; }
      return Promise.resolve(p);
    }
    if (this.count < this.settings.maxConnectionsPerDestination) return this.open();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  release(p: PooledConnection, reusable: boolean): void {
    if (!p.alive) { this.wakeWaiter(); return; }
    if (!reusable || p.messages >= MAX_MESSAGES_PER_CONNECTION) {
      p.conn.quit();
      return; // 'end' does the bookkeeping
    }
    const w = this.waiters.shift();
    if (w) { w.resolve(p); return; }
    p.idleTimer = setTimeout(() => p.conn.quit(), this.idleMs);
    p.idleTimer.unref();
    this.idle.push(p);
  }

  private sendOn(p: PooledConnection, from: string, to: string[], content: MessageContent): Promise<SendResult> {
    return new Promise((resolve, reject) => {
      // a blob stream is opened per transaction, and read only once the envelope is accepted
      p.conn.send({ from, to }, messageBody(content), (err, info) => {
        p.messages++;
        if (err) {
          const e = err as SmtpError;
          if (e.code === 'ESTREAM') {
            // the content failed to read mid-DATA: drop the connection, never end the DATA
            // (no QUIT either: it would be read as message text); 'end' does the bookkeeping
            p.conn.close();
          } else if ((e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421 && p.alive) {
            // the server refused this message; the session is fine once reset
            p.conn.reset((resetErr) => { this.release(p, !resetErr); });
          } else {
            this.release(p, false);
          }
          reject(e);
          return;
        }
        this.release(p, true);
        const rejectedErrors = (info as unknown as { rejectedErrors?: SmtpError[] }).rejectedErrors ?? [];
        resolve({
          accepted: (info.accepted ?? []).map(String),
          rejected: rejectedErrors.map((r) => ({ address: String((r as unknown as { recipient: string }).recipient), code: r.responseCode ?? 450, response: r.response ?? 'rejected' })),
          response: String(info.response ?? ''),
        });
      });
    });
  }

  async send(from: string, to: string[], content: MessageContent): Promise<SendResult> {
    this.active++;
    this.lastUsed = Date.now();
    try {
      const p = await this.acquire();
      const reused = p.messages > 0;
      try {
        return await this.sendOn(p, from, to, content);
      } catch (err) {
        // a reused connection the server had closed meanwhile: once more on a fresh one
        const e = err as SmtpError;
        if (reused && e.responseCode === undefined && (e.code === 'ECONNECTION' || e.code === 'ESOCKET' || e.code === 'ETIMEDOUT')) {
          return await this.sendOn(await this.acquire(), from, to, content);
        }
        throw err;
      }
    } finally {
      this.active--;
      this.lastUsed = Date.now();
    }
  }

  get idleSince(): number {
    return this.active === 0 && this.waiters.length === 0 ? this.lastUsed : Infinity;
  }

  close(): void {
    for (const w of this.waiters.splice(0)) w.reject(Object.assign(new Error('transport closed'), { code: 'ECONNECTION' }));
    for (const p of this.idle.splice(0)) { if (p.idleTimer) clearTimeout(p.idleTimer); p.conn.close(); }
  }
}

/**
 * With TLS required (encrypt/verify) a server without STARTTLS answers our STARTTLS with a
 * 5xx; as Postfix ("TLS is required, but was not offered"), that is a temporary failure:
 * the mail waits for the policy or the server to change, it never bounces for it.
 */
function tlsFailureIsTemporary(err: Error, level: TlsSecurityLevel): Error {
  const e = err as SmtpError & { command?: string };
  if ((level === 'encrypt' || level === 'verify') && (e.command === 'STARTTLS' || e.code === 'ETLS')) {
    return Object.assign(new Error(`TLS is required (${level}) but failed: ${e.response ?? e.message}`), { code: 'ETLS' });
  }
  return err;
}

export class TransportPool implements Sender {
  private destinations = new Map<string, Destination>();
  private settings: TransportSettings;
  private timer: NodeJS.Timeout;
  private readonly idleMs: number;

  constructor(settings: TransportSettings, idleMs = 30_000) {
    this.settings = settings;
    this.idleMs = idleMs;
    this.timer = setInterval(() => this.closeIdle(), Math.min(idleMs, 10_000));
    this.timer.unref();
  }

  /** New settings apply to connections opened from now on; idle pools are dropped. */
  configure(settings: TransportSettings): void {
    const changed = JSON.stringify(settings) !== JSON.stringify(this.settings);
    this.settings = settings;
    if (changed) for (const [k, d] of this.destinations) if (d.active === 0) { d.close(); this.destinations.delete(k); }
  }

  /** Sends one transaction; rejects with nodemailer's error (code, responseCode, response, rejectedErrors). */
  send(address: string, port: number, servername: string, from: string, to: string[], content: MessageContent, _messageId?: string, domain?: string): Promise<SendResult> {
    const level = levelForDomain(domain, this.settings.tls);
    const key = `${address}|${port}|${servername}|${level}`;
    let d = this.destinations.get(key);
    if (!d) {
      d = new Destination(address, port, servername, this.settings, this.idleMs, level);
      this.destinations.set(key, d);
    }
    return d.send(from, to, content);
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const [k, d] of this.destinations) {
      if (now - d.idleSince > this.idleMs) { d.close(); this.destinations.delete(k); }
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const d of this.destinations.values()) d.close();
    this.destinations.clear();
  }
}
