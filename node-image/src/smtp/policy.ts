// Pure inbound policy: relay control, loop detection, the Received header.
import { domainOf } from '../routing/route.ts';

export interface RelayPolicy {
  relayDomains: ReadonlySet<string>;
  isRelayNetwork: (ip: string) => boolean;
  /** An etrn-cluster peer's own address (peers hand each other mail when a node drains). */
  isPeer: (ip: string) => boolean;
}

export type RelayVerdict = { ok: true; why: 'relay-domain' | 'relay-network' | 'authenticated' | 'peer' } | { ok: false };

/**
 * Accept a recipient in a relay domain from anyone; any other destination only from a
 * relay network, an authenticated client or a peer. `clientIp` is the real client: the
 * PROXY header's source, never the load balancer's address.
 */
export function relayVerdict(recipient: string, clientIp: string, authenticated: boolean, p: RelayPolicy): RelayVerdict {
  const domain = domainOf(recipient);
  if (domain && p.relayDomains.has(domain)) return { ok: true, why: 'relay-domain' };
  if (p.isRelayNetwork(clientIp)) return { ok: true, why: 'relay-network' };
  if (authenticated) return { ok: true, why: 'authenticated' };
  if (p.isPeer(clientIp)) return { ok: true, why: 'peer' };
  return { ok: false };
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
