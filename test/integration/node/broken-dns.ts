// A broken authoritative DNS server for one zone, to sit behind a real dnsmasq
// (`--server=/zone/this`): it answers MX with an empty answer (NOERROR, no records) and
// answers A/AAAA as the test says: SERVFAIL, not at all (the resolver times out), or with
// an address. dnsmasq cannot fail one record type of a name and answer another, which is
// exactly the case under test (an empty MX answer, then a failing address lookup).
import dgram from 'node:dgram';

export type AddressMode = { kind: 'servfail' } | { kind: 'drop' } | { kind: 'answer'; ipv4: string };

export interface BrokenDns {
  address: string;
  port: number;
  /** How A/AAAA queries are answered from now on. */
  setMode(mode: AddressMode): void;
  /** Queries seen, as `TYPE name`. */
  queries: string[];
  stop(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: 'A', 28: 'AAAA', 15: 'MX' };

/** The question section's end and the query type (pure). */
function question(msg: Buffer): { end: number; qtype: number; name: string } | null {
  let i = 12;
  const labels: string[] = [];
  while (i < msg.length && msg[i] !== 0) {
    const len = msg[i];
    if (len > 63) return null;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return null;
  return { end: i + 5, qtype: msg.readUInt16BE(i + 1), name: labels.join('.') };
}

/** A reply to `query` with `rcode` and optional A records (pure). */
export function dnsReply(query: Buffer, rcode: number, ipv4: string[] = []): Buffer | null {
  const q = question(query);
  if (!q) return null;
  const head = Buffer.alloc(12);
  query.copy(head, 0, 0, 2); // id
  const rd = query.readUInt16BE(2) & 0x0100;
  head.writeUInt16BE(0x8000 | 0x0400 | rd | 0x0080 | rcode, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(ipv4.length, 6);
  const answers = ipv4.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(0, 6); // TTL 0: nothing cached
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((p, k) => rr.writeUInt8(Number(p), 12 + k));
    return rr;
  });
  return Buffer.concat([head, query.subarray(12, q.end), ...answers]);
}

export async function startBrokenDns(address: string, initial: AddressMode): Promise<BrokenDns> {
  const socket = dgram.createSocket('udp4');
  let mode = initial;
  const queries: string[] = [];
  socket.on('message', (msg, rinfo) => {
    const q = question(msg);
    if (!q) return;
    queries.push(`${TYPES[q.qtype] ?? q.qtype} ${q.name}`);
    let reply: Buffer | null = null;
    if (q.qtype === 1 || q.qtype === 28) {
      if (mode.kind === 'drop') return;
      if (mode.kind === 'servfail') reply = dnsReply(msg, 2);
      else reply = dnsReply(msg, 0, q.qtype === 1 ? [mode.ipv4] : []);
    } else {
      reply = dnsReply(msg, 0); // MX and anything else: an empty answer (NODATA)
    }
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => { socket.off('error', reject); resolve(); });
  });
  return {
    address,
    port: socket.address().port,
    setMode: (m) => { mode = m; },
    queries,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
