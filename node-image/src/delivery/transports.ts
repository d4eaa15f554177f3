// One pooled nodemailer SMTP transport per destination address:port, so connections to a
// destination are reused across messages; idle pools are closed.
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';

export interface TransportSettings {
  hostname: string;
  localAddress?: string;
  maxConnectionsPerDestination: number;
  connectionTimeoutMs: number;
  socketTimeoutMs: number;
}

export interface SendResult {
  accepted: string[];
  rejected: { address: string; code: number; response: string }[];
  response: string;
}

interface Entry { transport: Transporter; lastUsed: number; active: number }

/** Sends one SMTP transaction to one destination address (in this thread or the delivery thread). */
export interface Sender {
  send(address: string, port: number, servername: string, from: string, to: string[], raw: Buffer, messageId?: string): Promise<SendResult>;
  configure(settings: TransportSettings): void;
  close(): void;
}

export class TransportPool implements Sender {
  private entries = new Map<string, Entry>();
  private settings: TransportSettings;
  private timer: NodeJS.Timeout;

  constructor(settings: TransportSettings, idleMs = 30_000) {
    this.settings = settings;
    this.timer = setInterval(() => this.closeIdle(idleMs), Math.min(idleMs, 10_000));
    this.timer.unref();
  }

  /** New settings apply to pools created from now on; existing pools are retired when idle. */
  configure(settings: TransportSettings): void {
    const changed = JSON.stringify(settings) !== JSON.stringify(this.settings);
    this.settings = settings;
    if (changed) for (const [k, e] of this.entries) if (e.active === 0) { e.transport.close(); this.entries.delete(k); }
  }

  private get(address: string, port: number, servername: string): Entry {
    const key = `${address}|${port}|${servername}`;
    let e = this.entries.get(key);
    if (!e) {
      const s = this.settings;
      const transport = nodemailer.createTransport({
        pool: true,
        host: address,
        port,
        secure: false,
        name: s.hostname,
        localAddress: s.localAddress,
        maxConnections: s.maxConnectionsPerDestination,
        maxMessages: 1000,
        connectionTimeout: s.connectionTimeoutMs,
        greetingTimeout: s.connectionTimeoutMs,
        socketTimeout: s.socketTimeoutMs,
        // opportunistic STARTTLS, as MTAs do: an unverifiable certificate still beats plain text
        tls: { rejectUnauthorized: false, servername: servername || undefined },
        logger: false,
      } as Parameters<typeof nodemailer.createTransport>[0]);
      e = { transport, lastUsed: Date.now(), active: 0 };
      this.entries.set(key, e);
    }
    return e;
  }

  /** Sends one transaction; throws nodemailer's error (code, responseCode, response, rejectedErrors). */
  async send(address: string, port: number, servername: string, from: string, to: string[], raw: Buffer, messageId?: string): Promise<SendResult> {
    const e = this.get(address, port, servername);
    e.active++;
    e.lastUsed = Date.now();
    try {
      // messageId only names the send in nodemailer's info (raw content is sent as is); giving it saves a random id
      const info = await e.transport.sendMail({ envelope: { from, to }, raw, messageId });
      const rejectedErrors = ((info as unknown as { rejectedErrors?: Array<{ recipient: string; responseCode?: number; response?: string }> }).rejectedErrors) ?? [];
      return {
        accepted: (info.accepted as string[]).map(String),
        rejected: rejectedErrors.map((r) => ({ address: r.recipient, code: r.responseCode ?? 450, response: r.response ?? 'rejected' })),
        response: String(info.response ?? ''),
      };
    } finally {
      e.active--;
      e.lastUsed = Date.now();
    }
  }

  private closeIdle(idleMs: number): void {
    const now = Date.now();
    for (const [k, e] of this.entries) {
      if (e.active === 0 && now - e.lastUsed > idleMs) { e.transport.close(); this.entries.delete(k); }
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const e of this.entries.values()) e.transport.close();
    this.entries.clear();
  }
}
