// PROXY protocol v1 (text) and v2 (binary) header parser, pure: bytes in, verdict out.
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
import net from 'node:net';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'ascii');
const V1_MAX = 107;
/** Largest v2 header we accept (16-byte fixed part + addresses + TLVs). */
export const V2_MAX = 16 + 1024;

export interface ProxyEndpoint { address: string; port: number }

export type ProxyParse =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  | {
      kind: 'ok';
      version: 1 | 2;
      /** 'local' (v2 LOCAL, v1 UNKNOWN): a health check by the proxy itself; use the socket's addresses. */
      command: 'proxy' | 'local';
      source?: ProxyEndpoint;
      destination?: ProxyEndpoint;
      /** Bytes the header occupies; what follows is the client's stream. */
      length: number;
    };

/** True when `buf` could be the start of a PROXY header (v1 or v2) — to refuse it from untrusted peers. */
export function startsLikeProxyHeader(buf: Buffer): boolean {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (n > 0 && buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return true;
  const m = Math.min(buf.length, V1_PREFIX.length);
  return m > 0 && buf.subarray(0, m).equals(V1_PREFIX.subarray(0, m));
}

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

function parseV1(buf: Buffer): ProxyParse {
  const limit = Math.min(buf.length, V1_MAX);
  let end = -1;
  for (let i = 0; i < limit - 1; i++) {
    if (buf[i] === 0x0d && buf[i + 1] === 0x0a) { end = i; break; }
  }
  if (end < 0) {
    return buf.length >= V1_MAX ? { kind: 'invalid', reason: 'PROXY v1 line longer than 107 bytes' } : { kind: 'incomplete' };
  }
  const line = buf.subarray(0, end).toString('latin1');
  const parts = line.split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { kind: 'ok', version: 1, command: 'local', length };
  if (parts.length !== 6) return { kind: 'invalid', reason: `PROXY v1 line has ${parts.length} fields, want 6` };
  const [, proto, src, dst, sportText, dportText] = parts;
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (!family) return { kind: 'invalid', reason: `unknown PROXY v1 protocol ${JSON.stringify(proto)}` };
  if (net.isIP(src) !== family || net.isIP(dst) !== family) return { kind: 'invalid', reason: 'bad address in PROXY v1 line' };
  const sport = parsePort(sportText);
  const dport = parsePort(dportText);
  if (sport === null || dport === null) return { kind: 'invalid', reason: 'bad port in PROXY v1 line' };
  return { kind: 'ok', version: 1, command: 'proxy', source: { address: src, port: sport }, destination: { address: dst, port: dport }, length };
}

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // let the URL parser canonicalise (zero compression)
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return { kind: 'incomplete' };
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return { kind: 'invalid', reason: `PROXY v2 version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd !== 0 && cmd !== 1) return { kind: 'invalid', reason: `PROXY v2 command ${cmd}` };
  const famProto = buf[13];
  const len = buf.readUInt16BE(14);
  if (16 + len > V2_MAX) return { kind: 'invalid', reason: `PROXY v2 header too long (${len})` };
  if (buf.length < 16 + len) return { kind: 'incomplete' };
  const length = 16 + len;
  if (cmd === 0) return { kind: 'ok', version: 2, command: 'local', length };
  const body = buf.subarray(16, 16 + len);
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family === 0 || transport === 0) return { kind: 'ok', version: 2, command: 'local', length }; // UNSPEC: keep socket addresses
  if (transport !== 1) return { kind: 'invalid', reason: 'PROXY v2 transport is not TCP' };
  if (family === 1) {
    if (len < 12) return { kind: 'invalid', reason: 'PROXY v2 IPv4 address block too short' };
    const src = [...body.subarray(0, 4)].join('.');
    const dst = [...body.subarray(4, 8)].join('.');
    return { kind: 'ok', version: 2, command: 'proxy', source: { address: src, port: body.readUInt16BE(8) }, destination: { address: dst, port: body.readUInt16BE(10) }, length };
  }
  if (family === 2) {
    if (len < 36) return { kind: 'invalid', reason: 'PROXY v2 IPv6 address block too short' };
    return {
      kind: 'ok', version: 2, command: 'proxy',
      source: { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
      destination: { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) },
      length,
    };
  }
  if (family === 3) return { kind: 'ok', version: 2, command: 'local', length }; // AF_UNIX: no IP to report
  return { kind: 'invalid', reason: `PROXY v2 address family ${family}` };
}

/** Parses the PROXY header at the start of `buf` (what has arrived so far). */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { kind: 'incomplete' };
  if (buf[0] === V2_SIGNATURE[0]) {
    const n = Math.min(buf.length, V2_SIGNATURE.length);
    if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return { kind: 'invalid', reason: 'not a PROXY header' };
    if (buf.length < V2_SIGNATURE.length) return { kind: 'incomplete' };
    return parseV2(buf);
  }
  const n = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) return { kind: 'invalid', reason: 'not a PROXY header' };
  if (buf.length < V1_PREFIX.length) return { kind: 'incomplete' };
  return parseV1(buf);
}

/** Builds a v2 PROXY header (for tests and for clients of ours that sit behind nothing). */
export function buildProxyV2(source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  const v4 = net.isIPv4(source.address);
  const body = Buffer.alloc(v4 ? 12 : 36);
  if (v4) {
    source.address.split('.').forEach((o, i) => { body[i] = Number(o); });
    destination.address.split('.').forEach((o, i) => { body[4 + i] = Number(o); });
    body.writeUInt16BE(source.port, 8);
    body.writeUInt16BE(destination.port, 10);
  } else {
    const put = (addr: string, at: number) => {
      const bl = new net.SocketAddress({ address: addr, family: 'ipv6' });
      const full = expandIpv6(bl.address);
      full.forEach((g, i) => body.writeUInt16BE(g, at + i * 2));
    };
    put(source.address, 0);
    put(destination.address, 16);
    body.writeUInt16BE(source.port, 32);
    body.writeUInt16BE(destination.port, 34);
  }
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head);
  head[12] = 0x21;
  head[13] = v4 ? 0x11 : 0x21;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

function expandIpv6(a: string): number[] {
  const [l, r] = a.includes('::') ? a.split('::') : [a, undefined];
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const fill = r === undefined ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g || '0', 16));
}
