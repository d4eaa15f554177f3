// The routing decision (ZMailer getmxrr rule), pure: MX records + SELFADDRESSES in, hosts out.
import net from 'node:net';
import { normalizeIp } from '../net/cidr.ts';

export interface MxCandidate {
  exchange: string;
  priority: number;
  /** The exchange's A/AAAA addresses (an empty list: unresolvable). */
  addresses: string[];
}

export type RouteDecision =
  | { kind: 'deliver'; hosts: MxCandidate[] }
  | { kind: 'defer'; reason: string }
  | { kind: 'fail'; reason: string };

export interface SelfSet { names: Set<string>; ips: Set<string> }

function canonicalIp(a: string): string {
  const ip = normalizeIp(a);
  if (net.isIPv6(ip)) return new URL(`http://[${ip}]/`).hostname.slice(1, -1).toLowerCase();
  return ip;
}

/** SELFADDRESSES entries into sets: `1.2.3.4`, `[1.2.3.4]`, `[IPv6:x::y]` are addresses, anything else a name. */
export function selfSet(entries: readonly string[]): SelfSet {
  const names = new Set<string>();
  const ips = new Set<string>();
  for (const raw of entries) {
    const e = raw.trim();
    const m = /^\[(?:IPv6:)?(.*)\]$/i.exec(e);
    const inner = m ? m[1] : e;
    if (net.isIP(inner)) ips.add(canonicalIp(inner));
    else if (inner) names.add(inner.toLowerCase().replace(/\.$/, ''));
  }
  return { names, ips };
}

/** True when an MX host is one of us, by name or by any of its addresses. */
export function isSelf(mx: MxCandidate, self: SelfSet): boolean {
  const name = mx.exchange.toLowerCase().replace(/\.$/, '');
  const literal = /^\[(?:IPv6:)?(.*)\]$/i.exec(name);
  const asIp = literal ? literal[1] : name;
  if (net.isIP(asIp) && self.ips.has(canonicalIp(asIp))) return true;
  if (self.names.has(name)) return true;
  return mx.addresses.some((a) => self.ips.has(canonicalIp(a)));
}

/**
 * Orders MX hosts by preference; drops every self MX and every MX of equal or worse
 * preference than the best self MX. Nothing left: defer (never loop to a peer).
 */
export function chooseMxHosts(domain: string, records: readonly MxCandidate[], self: SelfSet): RouteDecision {
  if (records.length === 1 && (records[0].exchange === '' || records[0].exchange === '.')) {
    return { kind: 'fail', reason: `${domain} does not accept mail (null MX)` };
  }
  const sorted = [...records].sort((a, b) => a.priority - b.priority);
  let cutoff = Infinity;
  for (const r of sorted) {
    if (isSelf(r, self)) { cutoff = Math.min(cutoff, r.priority); }
  }
  const kept = sorted.filter((r) => r.priority < cutoff);
  if (kept.length === 0) {
    if (sorted.length === 0) return { kind: 'defer', reason: `no MX or address records for ${domain}` };
    return { kind: 'defer', reason: `MX for ${domain} points to this cluster (SELFADDRESSES) and no better MX is left` };
  }
  const usable = kept.filter((r) => r.addresses.length > 0);
  if (usable.length === 0) return { kind: 'defer', reason: `no address for the MX hosts of ${domain}: ${kept.map((r) => r.exchange).join(', ')}` };
  return { kind: 'deliver', hosts: usable };
}

/** The domain of an address (`user@Example.COM` -> `example.com`); '' for none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

/** A domain literal `[1.2.3.4]` / `[IPv6:…]` as an address, or null. */
export function domainLiteral(domain: string): string | null {
  const m = /^\[(?:ipv6:)?(.*)\]$/i.exec(domain);
  return m && net.isIP(m[1]) ? m[1] : null;
}
