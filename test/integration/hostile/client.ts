// A raw SMTP client for hostile tests: writes exact bytes (bare LF, NUL, pipelined
// commands in one packet), reads complete replies, upgrades to TLS in place.
import net from 'node:net';
import tls from 'node:tls';

export interface Reply { code: number; text: string; raw: string }

export interface RawClient {
  /** The greeting (or the refusal that came instead). */
  greeting: Reply;
  /** Writes bytes as they are (one write: one packet for small writes). */
  write(data: string | Buffer): void;
  /** The next complete reply (rejects after `timeoutMs`, or when the connection closed without one). */
  reply(timeoutMs?: number): Promise<Reply>;
  /** Sends one line (CRLF added) and reads its reply. */
  command(line: string): Promise<Reply>;
  /** STARTTLS already answered 220: the TLS handshake on the same socket; returns the server's certificate. */
  upgrade(options?: tls.ConnectionOptions): Promise<tls.PeerCertificate>;
  /** Resolves when the server closed the connection. */
  closed(timeoutMs?: number): Promise<boolean>;
  /** Everything received so far, as latin1. */
  received(): string;
  close(): void;
}

const REPLY = /^(?:\d{3}-[^\n]*\r?\n)*(\d{3})(?: [^\n]*)?\r?\n/;

export async function connectRaw(host: string, port: number, localAddress?: string, opts: { waitGreeting?: boolean } = {}): Promise<RawClient> {
  let socket: net.Socket = net.connect({ host, port, localAddress });
  let buffer = '';
  let all = '';
  let ended = false;
  const waiters: Array<() => void> = [];
  const poke = () => { for (const w of waiters.splice(0)) w(); };
  const attach = (s: net.Socket) => {
    s.on('data', (d: Buffer) => { buffer += d.toString('latin1'); all += d.toString('latin1'); poke(); });
    s.on('close', () => { ended = true; poke(); });
    s.on('error', () => {});
  };
  attach(socket);
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const reply = (timeoutMs = 10000) => new Promise<Reply>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no SMTP reply in ${timeoutMs} ms; buffer ${JSON.stringify(buffer.slice(0, 300))}`)), timeoutMs);
    const check = () => {
      const m = REPLY.exec(buffer);
      if (m) {
        buffer = buffer.slice(m[0].length);
        clearTimeout(timer);
        const lines = m[0].trimEnd().split(/\r?\n/);
        resolve({ code: Number(m[1]), text: lines.map((l) => l.slice(4)).join('\n'), raw: m[0] });
        return;
      }
      if (ended) { clearTimeout(timer); reject(new Error(`connection closed; buffer ${JSON.stringify(buffer.slice(0, 300))}`)); return; }
      waiters.push(check);
    };
    check();
  });
  const greeting = opts.waitGreeting === false ? { code: 0, text: '', raw: '' } : await reply();
  return {
    greeting,
    write: (data) => { socket.write(data); },
    reply,
    command: (line) => { socket.write(line + '\r\n'); return reply(); },
    upgrade: async (options = {}) => {
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      buffer = '';
      const secure = tls.connect({ socket, rejectUnauthorized: false, ...options });
      await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject); });
      socket = secure;
      attach(secure);
      return secure.getPeerCertificate();
    },
    closed: (timeoutMs = 5000) => new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      const check = () => { if (ended) { clearTimeout(timer); resolve(true); } else waiters.push(check); };
      check();
    }),
    received: () => all,
    close: () => socket.destroy(),
  };
}
