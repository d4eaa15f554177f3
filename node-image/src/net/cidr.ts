// CIDR parsing and matching for relay-network, proxy-protocol and scheduler.auth ACLs.
import net from 'node:net';

export interface Cidr { address: string; prefix: number; family: 4 | 6 }

/** Parses `a.b.c.d/n`, `a.b.c.d` (a /32), `[a.b.c.d]/n` (ZMailer style), `x::y/n`, `[IPv6:x::y]/n`. Throws on bad input. */
export function parseCidr(text: string): Cidr {
  let t = text.trim();
  let prefixText: string | undefined;
  const slash = t.lastIndexOf('/');
  if (slash >= 0) {
    prefixText = t.slice(slash + 1);
    t = t.slice(0, slash);
  }
  const m = /^\[(?:IPv6:)?(.*)\]$/i.exec(t);
  if (m) t = m[1];
  const family = net.isIP(t);
  if (family !== 4 && family !== 6) throw new Error(`not an IP network: ${JSON.stringify(text)}`);
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw new Error(`bad prefix length in ${JSON.stringify(text)}`);
    prefix = Number(prefixText);
  }
  return { address: t, prefix, family };
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** Strips the IPv4-mapped IPv6 prefix that dual-stack sockets report (`::ffff:1.2.3.4`). */
export function normalizeIp(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** A matcher over a list of CIDR strings (as parseCidr accepts). */
export function cidrMatcher(cidrs: readonly string[]): (address: string | undefined) => boolean {
  const list = new net.BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    list.addSubnet(p.address, p.prefix, p.family === 4 ? 'ipv4' : 'ipv6');
  }
  return (address) => {
    if (!address) return false;
    const a = normalizeIp(address);
    const family = net.isIP(a);
    if (family === 0) return false;
    return list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/** True when `address` is inside any of `cidrs`. */
export function isAddressInCidrs(address: string | undefined, cidrs: readonly string[]): boolean {
  return cidrMatcher(cidrs)(address);
}
