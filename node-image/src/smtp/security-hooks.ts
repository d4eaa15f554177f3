// Issue-10 pieces of inbound SMTP that patch smtp-server connections or derive options
// from the config: kept here so that server.ts keeps only the calls.
import tls from 'node:tls';
import type { TlsMaterial } from '../config/load.ts';
import type { NodeConfig } from '../config/types.ts';
import { parseRecipientPath } from './policy.ts';
import { WindowCounter } from './limits.ts';
import type { SmtpConnection } from './server.ts';

/** The default certificate: the public one, else the peer one (peers still get STARTTLS). */
export function effectiveTls(publicTls: TlsMaterial | null, config: NodeConfig): TlsMaterial | null {
  if (publicTls) return publicTls;
  const p = config.security.peerTls;
  return p ? { cert: Buffer.from(p.cert), key: Buffer.from(p.key) } : null;
}

export function peerContext(config: NodeConfig): { name: string; context: tls.SecureContext } | null {
  const p = config.security.peerTls;
  return p ? { name: p.name, context: tls.createSecureContext({ cert: p.cert, key: p.key }) } : null;
}

/** AUTH only with TLS and configured users (PARAM smtp-auth-users); STARTTLS only with TLS. */
export function authCommands(tlsMaterial: TlsMaterial | null, config: NodeConfig): string[] {
  if (!tlsMaterial) return ['STARTTLS', 'AUTH'];
  return config.security.smtpAuthUsers === null ? ['AUTH'] : [];
}

/** An authenticated user may relay only with the RELAY right. */
export function hasRelayRight(user: unknown): boolean {
  return typeof user === 'object' && user !== null && (user as { relay?: unknown }).relay === true;
}

export function rateWindow(seconds: number): { window: number; counter: WindowCounter } {
  return { window: seconds, counter: new WindowCounter(seconds) };
}

/**
 * smtp-server lists AUTH in EHLO on a plaintext session too (and answers AUTH there with
 * 538). AUTH is offered only after STARTTLS: the keyword is dropped from a plaintext EHLO.
 */
export function hideAuthBeforeTls(c: SmtpConnection): void {
  type Ehlo = (this: SmtpConnection, command: Buffer, cb: () => void) => void;
  const conn = c as unknown as { handler_EHLO: Ehlo; secure: boolean };
  const ehlo = conn.handler_EHLO;
  conn.handler_EHLO = function (this: SmtpConnection, command, cb) {
    if (!(this as unknown as { secure: boolean }).secure) {
      const send = this.send;
      this.send = (code, data, context) => {
        this.send = send;
        const lines = Array.isArray(data) ? data.filter((l) => !/^AUTH\b/i.test(l)) : data;
        return send(code, lines, context);
      };
    }
    return ehlo.call(this, command, cb);
  };
}

/** smtp-server's parsed RCPT address plus the path as the client sent it (keepRecipientPaths). */
export type RcptAddress = { address: string; rawPath?: string; unparsable?: boolean };

type AddressParser = (name: string, command: Buffer | string) => false | (RcptAddress & { args: unknown });

/**
 * smtp-server drops a source route and refuses a trailing dot or a quoted local part with
 * `@` before our handler runs. Relay control needs the path as sent (Postfix refuses routed
 * paths with 554 5.7.1 and takes `user@domain.` as `user@domain`), so the RCPT parser keeps
 * it: a single trailing dot is dropped first; a routed path the strict parser refuses still
 * reaches onRcptTo (marked unparsable) to get its relay answer.
 */
export function keepRecipientPaths(c: SmtpConnection): void {
  const conn = c as unknown as { _parseAddressCommand: AddressParser };
  const parse = conn._parseAddressCommand.bind(c);
  conn._parseAddressCommand = (name, command) => {
    if (String(name).trim().toLowerCase() !== 'rcpt to') return parse(name, command);
    const text = command.toString();
    const m = /^([^:]*:\s*)<([^<>]*)>(.*)$/s.exec(text);
    if (!m) return parse(name, command);
    const raw = m[2];
    const path = parseRecipientPath(raw);
    const undotted = /[^.]\.$/.test(raw) ? raw.slice(0, -1) : raw;
    const parsed = parse(name, `${m[1]}<${undotted}>${m[3]}`);
    if (parsed) { parsed.rawPath = raw; return parsed; }
    if (path?.routed) return { address: path.address, args: false, rawPath: raw, unparsable: true };
    return false;
  };
}
