// PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2): tells the
// backend the real client address. Binary form: 12-byte signature, version/command,
// family/transport, 2-byte length, then addresses and ports.
import { isIPv4, isIPv6 } from 'node:net';

export const proxyV2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export interface Endpoints { sourceAddress: string; sourcePort: number; destinationAddress: string; destinationPort: number }

function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

function ipv6Bytes(ip: string): number[] {
  const [head, tail = ''] = ip.split('::');
  const parse = (part: string) => (part ? part.split(':') : []).flatMap((group) => {
    if (group.includes('.')) return ipv4Bytes(group).reduce<number[]>((acc, b, i) => (i % 2 ? [...acc.slice(0, -1), acc.at(-1)! * 256 + b] : [...acc, b]), []);
    return [parseInt(group, 16)];
  });
  const h = parse(head);
  const t = ip.includes('::') ? parse(tail) : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill(0), ...t] : h;
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** Strips the IPv4-mapped IPv6 prefix Node reports on dual-stack sockets. */
function plain(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

/** The PROXY v2 header for a proxied TCP connection (PROXY command, TCP over IPv4 or IPv6). */
export function proxyV2Header(e: Endpoints): Buffer {
  const src = plain(e.sourceAddress);
  const dst = plain(e.destinationAddress);
  const ports = [e.sourcePort >> 8, e.sourcePort & 0xff, e.destinationPort >> 8, e.destinationPort & 0xff];
  let family: number;
  let body: number[];
  if (isIPv4(src) && isIPv4(dst)) {
    family = 0x11; // AF_INET, STREAM
    body = [...ipv4Bytes(src), ...ipv4Bytes(dst), ...ports];
  } else if (isIPv6(src) || isIPv6(dst)) {
    family = 0x21; // AF_INET6, STREAM
    const v6 = (ip: string) => (isIPv4(ip) ? ipv6Bytes(`::ffff:${ip}`) : ipv6Bytes(ip));
    body = [...v6(src), ...v6(dst), ...ports];
  } else {
    throw new Error(`PROXY v2: cannot encode addresses ${src} -> ${dst}`);
  }
  return Buffer.concat([proxyV2Signature, Buffer.from([0x21, family, body.length >> 8, body.length & 0xff, ...body])]);
}

/** Parses a PROXY v2 header at the start of `data` (for tests and diagnostics). */
export function parseProxyV2Header(data: Buffer): (Endpoints & { length: number }) | undefined {
  if (data.length < 16 || !data.subarray(0, 12).equals(proxyV2Signature)) return undefined;
  const length = data.readUInt16BE(14);
  if (data.length < 16 + length || data[12] !== 0x21) return undefined;
  const b = data.subarray(16, 16 + length);
  if (data[13] === 0x11) {
    return { sourceAddress: [...b.subarray(0, 4)].join('.'), destinationAddress: [...b.subarray(4, 8)].join('.'), sourcePort: b.readUInt16BE(8), destinationPort: b.readUInt16BE(10), length: 16 + length };
  }
  if (data[13] === 0x21) {
    const v6 = (x: Buffer) => Array.from({ length: 8 }, (_, i) => x.readUInt16BE(i * 2).toString(16)).join(':');
    return { sourceAddress: v6(b.subarray(0, 16)), destinationAddress: v6(b.subarray(16, 32)), sourcePort: b.readUInt16BE(32), destinationPort: b.readUInt16BE(34), length: 16 + length };
  }
  return undefined;
}
