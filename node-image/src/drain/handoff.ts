// SMTP hand-off of one held message to a peer: the envelope as queued (MAIL FROM and the
// pending recipients), the content unchanged. One small pooled nodemailer transport per
// peer. When this node's source address lies in the proxy-protocol networks (the peer has
// the same list, so it expects a PROXY header from that address) the connection starts
// with a PROXY v2 header that names this node itself.
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Transporter } from 'nodemailer';
import { isAddressInCidrs } from '../net/cidr.ts';
import { buildProxyV2 } from '../proxy/parse.ts';
import type { HandoffTarget } from './plan.ts';
import { targetKey } from './plan.ts';

export interface HandoffSettings {
  hostname: string;
  /** Source address (this node's own), or the system's choice. */
  localAddress?: string;
  /** CIDRs whose connections must start with a PROXY header (PARAM proxy-protocol). */
  proxyNetworks: readonly string[];
  timeoutMs: number;
  /**
   * Contract 4: with peer TLS configured the hand-off requires STARTTLS, sends SNI
   * peer-tls-name and verifies the peer's certificate against peer-tls-ca-file (a peer
   * without it is a failed hand-off, the message stays). Without it: opportunistic (`may`).
   */
  peerTls?: { ca: string; name: string };
}

export interface HandoffResult {
  accepted: string[];
  rejected: Array<{ address: string; response: string }>;
  response: string;
}

type SocketCallback = (err: Error | null, socketOptions?: { connection: net.Socket }) => void;
type Nodemailer = typeof import('nodemailer').default;

// nodemailer's index loads every transport it has (47 modules): only on the first hand-off,
// not in every node's boot, which is most of the wait before a scaled-up node serves.
let nodemailerLoaded: Promise<Nodemailer> | undefined;
const loadNodemailer = (): Promise<Nodemailer> => (nodemailerLoaded ??= import('nodemailer').then((m) => m.default));

export class HandoffSender {
  readonly #settings: () => HandoffSettings;
  readonly #transports = new Map<string, Transporter>();

  constructor(settings: () => HandoffSettings) {
    this.#settings = settings;
  }

  async send(target: HandoffTarget, from: string, to: string[], raw: Buffer): Promise<HandoffResult> {
    const info = await (await this.#transport(target)).sendMail({ envelope: { from, to }, raw });
    const rejectedErrors = (info as unknown as { rejectedErrors?: Array<{ recipient: string; response?: string }> }).rejectedErrors ?? [];
    return {
      accepted: (info.accepted as string[]).map(String),
      rejected: rejectedErrors.map((r) => ({ address: r.recipient, response: r.response ?? 'rejected' })),
      response: String(info.response ?? ''),
    };
  }

  close(): void {
    for (const t of this.#transports.values()) t.close();
    this.#transports.clear();
  }

  async #transport(target: HandoffTarget): Promise<Transporter> {
    const s = this.#settings();
    const key = `${targetKey(target)}|${s.peerTls ? `${s.peerTls.name}|${createHash('sha256').update(s.peerTls.ca).digest('hex')}` : 'may'}`;
    let t = this.#transports.get(key);
    if (t) return t;
    const nodemailer = await loadNodemailer();
    // another send may have made it meanwhile (a transport made here is in the map, so the
    // next close() ends it)
    t = this.#transports.get(key);
    if (t) return t;
    t = nodemailer.createTransport({
      pool: true,
      maxConnections: 4,
      maxMessages: 1000,
      host: target.host,
      port: target.port,
      secure: false,
      name: s.hostname,
      connectionTimeout: s.timeoutMs,
      greetingTimeout: s.timeoutMs,
      socketTimeout: s.timeoutMs * 6,
      ...(s.peerTls
        ? { requireTLS: true, tls: { rejectUnauthorized: true, ca: s.peerTls.ca, servername: s.peerTls.name, minVersion: 'TLSv1.2' } }
        // no peer CA configured: opportunistic STARTTLS (`may`), the only unverified level
        : { opportunisticTLS: true, tls: { rejectUnauthorized: false } }),
      logger: false,
      getSocket: (_options: unknown, callback: SocketCallback) => this.#connect(target, callback),
    } as Parameters<Nodemailer['createTransport']>[0]);
    this.#transports.set(key, t);
    return t;
  }

  #connect(target: HandoffTarget, callback: SocketCallback): void {
    const s = this.#settings();
    const socket = net.connect({ host: target.host, port: target.port, localAddress: s.localAddress });
    const fail = (err: Error) => { socket.destroy(); callback(err); };
    socket.once('error', fail);
    socket.setTimeout(s.timeoutMs, () => fail(new Error(`connection to ${targetKey(target)} timed out`)));
    socket.once('connect', () => {
      socket.off('error', fail);
      socket.setTimeout(0);
      const source = socket.localAddress ?? '';
      if (isAddressInCidrs(source, s.proxyNetworks)) {
        socket.write(buildProxyV2({ address: source, port: socket.localPort ?? 0 }, { address: socket.remoteAddress ?? target.host, port: target.port }));
      }
      callback(null, { connection: socket });
    });
  }
}
