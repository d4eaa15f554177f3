// Address helpers for SELFADDRESSES and proxy-protocol lines: classification and a
// deterministic order, so that an unchanged cluster renders byte-identical files.
import { isIP } from 'node:net';

function ipv4Key(ip: string): string {
  return ip.split('.').map((o) => o.padStart(3, '0')).join('.');
}

function rank(a: string): [number, string] {
  const bare = a.replace(/^\[(IPv6:)?/i, '').replace(/\]$/, '');
  const family = isIP(bare);
  if (family === 4) return [0, ipv4Key(bare)];
  if (family === 6) return [1, bare.toLowerCase()];
  return [2, a.toLowerCase()];
}

/** Sorted, de-duplicated: IPv4 (numerically), IPv6, then names. */
export function sortAddresses(addresses: Iterable<string>): string[] {
  const unique = [...new Set([...addresses].filter((a) => a.length > 0))];
  return unique.sort((a, b) => {
    const [ra, ka] = rank(a);
    const [rb, kb] = rank(b);
    if (ra !== rb) return ra - rb;
    return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
}

/** How an address is written in SELFADDRESSES: IPv4 plain, IPv6 as an RFC 5321 literal. */
export function selfAddressForm(address: string): string {
  return isIP(address) === 6 ? `[IPv6:${address}]` : address;
}

/** A single-host CIDR for an IP address. */
export function hostCidr(ip: string): string {
  return isIP(ip) === 6 ? `${ip}/128` : `${ip}/32`;
}
