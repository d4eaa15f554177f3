// Loopback address ranges (DECISIONS.md) so that parallel test runs never collide,
// and free-port picking on one address. Linux routes all of 127.0.0.0/8 to `lo`,
// so any address in it can be bound without configuration.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * The ranges each part of the project binds in on the host; all inside 127.0.0.0/8. Pods are
 * not here: local mode's node gives them 10.244.1.x inside its own network namespace.
 */
export const ranges = {
  mailNodeTests: '127.10.0.0/16',
  etrnClusterTests: '127.20.0.0/16',
  localModeLoadBalancers: '127.31.0.0/16',
  localOwnTestsLoadBalancers: '127.43.0.0/16',
  imageTests: '127.46.0.0/16',
  harnessAndBenchmarks: '127.50.0.0/16',
  testClusterLoadBalancers: '127.51.0.0/16',
} as const;

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  }
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * The `index`-th address of an IPv4 CIDR (0 is the network address itself), e.g.
 * `addressIn('127.50.0.0/16', 257)` is `127.50.1.1`. Throws when outside the range
 * or outside 127.0.0.0/8, so a test can never bind a routable address by mistake.
 */
export function addressIn(cidr: string, index: number): string {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!Number.isInteger(bits) || bits < 8 || bits > 32) throw new Error(`bad CIDR ${JSON.stringify(cidr)}`);
  const size = 2 ** (32 - bits);
  if (!Number.isInteger(index) || index < 0 || index >= size) {
    throw new Error(`index ${index} is outside ${cidr} (size ${size})`);
  }
  const network = (ipToInt(base) & (bits === 32 ? 0xffffffff : ~(size - 1))) >>> 0;
  const ip = intToIp(network + index);
  if (!ip.startsWith('127.')) throw new Error(`${ip} is not a loopback address`);
  return ip;
}

/** `127.50.<a>.<b>`: the harness/benchmark address for a (subnet, host) pair. */
export function harnessAddress(subnet: number, host: number): string {
  return addressIn(ranges.harnessAndBenchmarks, subnet * 256 + host);
}

function tcpFree(address: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host: address, port, exclusive: true }, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

function udpFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => { socket.close(); resolve(false); });
    socket.bind({ address, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

/**
 * A port that is free for TCP (and UDP too with `udp: true`, as a DNS server needs)
 * on `address` right now. Another process may still take it before the caller binds;
 * callers on private 127.x addresses make that practically impossible.
 */
export async function freePort(address: string, { udp = false }: { udp?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await tcpFree(address, 0);
    if (port === undefined) throw new Error(`cannot bind ${address}: is it a loopback address?`);
    if (!udp || (await udpFree(address, port))) return port;
  }
  throw new Error(`no port free for both TCP and UDP on ${address}`);
}
