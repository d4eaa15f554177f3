// Pure inbound policy: relay control, loop detection, the Received header.
import { domainOf } from '../routing/route.ts';

export interface RelayPolicy {
  relayDomains: ReadonlySet<string>;
  isRelayNetwork: (ip: string) => boolean;
  /** An etrn-cluster peer's own address (peers hand each other mail when a node drains). */
  isPeer: (ip: string) => boolean;
}

/** Sender-specified routing found in a recipient path (Postfix's RESOLVE_FLAG_ROUTED). */
export type RoutingTrick = 'source-route' | 'percent' | 'bang' | 'at-in-local-part';

export type RelayVerdict =
  | { ok: true; why: 'relay-domain' | 'relay-network' | 'authenticated' | 'peer' }
  | { ok: false; routed?: RoutingTrick };

/** What a recipient path says, read the way Postfix's trivial-rewrite resolves it. */
export interface RecipientPath {
  /** The address without a source route, local part as sent, domain without a trailing dot. */
  address: string;
  /** The local part with quotes and backslash escapes removed. */
  localPart: string;
  /** Lower case, one trailing dot removed; `[1.2.3.4]` / `[ipv6:…]` for an address literal. */
  domain: string;
  /** The domain is an address literal (`user@[192.0.2.1]`): never a relay domain. */
  literal: boolean;
  /** The first sender-specified routing seen, if any. */
  routed?: RoutingTrick;
}

// `@a,@b:` before the mailbox (RFC 5321 A-d-l)
const SOURCE_ROUTE = /^@[^:]*:/;

/**
 * Reads a recipient path (what is between `<` and `>`; the brackets may be included), as
 * Postfix does with allow_untrusted_routing in mind: a source route is dropped but marks the
 * path routed; the local part is dequoted and routed when it holds `@`, `%` or `!`; the
 * domain loses one trailing dot and its case. Returns null when there is no `@domain`.
 */
export function parseRecipientPath(path: string): RecipientPath | null {
  let p = path.trim();
  if (p.startsWith('<') && p.endsWith('>')) p = p.slice(1, -1);
  let routed: RoutingTrick | undefined;
  const route = SOURCE_ROUTE.exec(p);
  if (route) {
    routed = 'source-route';
    p = p.slice(route[0].length);
  }
  // the domain starts after the last `@` outside a quoted string
  let inQuote = false;
  let at = -1;
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === '\\' && inQuote) { i++; continue; }
    if (ch === '"') inQuote = !inQuote;
    else if (ch === '@' && !inQuote) at = i;
  }
  if (at <= 0 || at === p.length - 1) return null;
  const rawLocal = p.slice(0, at);
  let domain = p.slice(at + 1).toLowerCase();
  if (domain.endsWith('.') && !domain.endsWith('..')) domain = domain.slice(0, -1);
  const literal = domain.startsWith('[') && domain.endsWith(']');
  const localPart = dequote(rawLocal);
  if (!routed) {
    if (localPart.includes('@')) routed = 'at-in-local-part';
    else if (localPart.includes('%')) routed = 'percent';
    else if (localPart.includes('!')) routed = 'bang';
  }
  return { address: `${rawLocal}@${p.slice(at + 1).replace(/(?<!\.)\.$/, '')}`, localPart, domain, literal, ...(routed ? { routed } : {}) };
}

/** `"a b"."c"` -> `a b.c`: quotes dropped, backslash escapes resolved. */
export function dequote(local: string): string {
  let out = '';
  for (let i = 0; i < local.length; i++) {
    const ch = local[i];
    if (ch === '"') continue;
    if (ch === '\\' && i + 1 < local.length) { out += local[++i]; continue; }
    out += ch;
  }
  return out;
}

/**
 * Relay control. A trusted client (relay network, authenticated user with a relay right,
 * etrn-cluster peer) may send anywhere, routing included. Anyone else only to a relay
 * domain, and not with sender-specified routing through it (Postfix's
 * allow_untrusted_routing = no): `victim%foreign@relay-domain` would make the relay
 * domain's MX forward to a third party. An address literal is never a relay domain.
 * `clientIp` is the real client: the PROXY header's source, never the load balancer's address.
 * `recipient` is the path as sent (source route included) or the parsed address.
 */
export function relayVerdict(recipient: string, clientIp: string, authenticated: boolean, p: RelayPolicy): RelayVerdict {
  const path = parseRecipientPath(recipient);
  const domain = path && !path.literal ? path.domain : '';
  const ours = domain !== '' && p.relayDomains.has(domain);
  if (ours && !path!.routed) return { ok: true, why: 'relay-domain' };
  if (p.isRelayNetwork(clientIp)) return { ok: true, why: 'relay-network' };
  if (authenticated) return { ok: true, why: 'authenticated' };
  if (p.isPeer(clientIp)) return { ok: true, why: 'peer' };
  return ours ? { ok: false, routed: path!.routed } : { ok: false };
}

/** The refusal reply for a verdict, as Postfix words it (relay_domains_reject_code 554 for routing). */
export function relayRefusal(v: { ok: false; routed?: RoutingTrick }, recipient: string): { code: number; message: string } {
  if (v.routed) return { code: 554, message: `5.7.1 <${recipient}>: Relay access denied (sender-specified routing)` };
  return { code: 550, message: '5.7.1 Relaying denied' };
}

/** Counts `Received:` header fields in the header section (up to the first empty line). */
export function countReceivedHeaders(content: Buffer): number {
  let count = 0;
  let lineStart = 0;
  const n = content.length;
  while (lineStart < n) {
    let end = content.indexOf(0x0a, lineStart);
    if (end < 0) end = n;
    const lineLen = end - lineStart - (end > lineStart && content[end - 1] === 0x0d ? 1 : 0);
    if (lineLen === 0) break; // end of the header section
    if (lineLen >= 9) {
      const head = content.toString('latin1', lineStart, lineStart + 9).toLowerCase();
      if (head === 'received:') count++;
    }
    lineStart = end + 1;
  }
  return count;
}

export interface ReceivedInfo {
  helo: string;
  clientIp: string;
  hostname: string;
  /** ESMTP, ESMTPS (TLS), ESMTPA (auth), ESMTPSA, SMTP (HELO). */
  protocol: string;
  id: string;
  recipient?: string;
  date: Date;
}

let dateCache = { second: -1, text: '' };
// formatted once per second: every accepted message needs one
function rfc5322Date(d: Date): string {
  const second = Math.floor(d.getTime() / 1000);
  if (second !== dateCache.second) dateCache = { second, text: d.toUTCString().replace('GMT', '+0000') };
  return dateCache.text;
}

export function receivedHeader(r: ReceivedInfo): string {
  const helo = r.helo.replace(/[^\x21-\x7e]/g, '') || 'unknown';
  const ip = r.clientIp.includes(':') ? `IPv6:${r.clientIp}` : r.clientIp;
  const forPart = r.recipient ? `\r\n\tfor <${r.recipient}>` : '';
  return `Received: from ${helo} ([${ip}])\r\n\tby ${r.hostname} (mailcluster) with ${r.protocol} id ${r.id}${forPart};\r\n\t${rfc5322Date(r.date)}\r\n`;
}

export function transmissionProtocol(esmtp: boolean, tls: boolean, auth: boolean): string {
  if (!esmtp) return 'SMTP';
  return `ESMTP${tls ? 'S' : ''}${auth ? 'A' : ''}`;
}
