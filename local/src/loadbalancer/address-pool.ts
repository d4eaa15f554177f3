// Addresses handed out from a CIDR inside 127.0.0.0/8: one per LoadBalancer Service. Linux
// routes all of 127.0.0.0/8 to the loopback device, so any address in the range can be bound
// without configuration.

export interface Cidr { base: number; size: number }

export function parseCidr(cidr: string): Cidr {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!match) throw new Error(`invalid address range ${JSON.stringify(cidr)}: expected an IPv4 CIDR such as 127.30.0.0/16`);
  const octets = match.slice(1, 5).map(Number);
  const bits = Number(match[5]);
  if (octets.some((o) => o > 255) || bits > 30 || bits < 8) {
    throw new Error(`invalid address range ${JSON.stringify(cidr)}: octets must be 0-255 and the prefix /8 to /30`);
  }
  if (octets[0] !== 127) throw new Error(`address range ${cidr} must lie inside 127.0.0.0/8 (local mode binds loopback only)`);
  const size = 2 ** (32 - bits);
  const value = ipToNumber(octets.join('.'));
  return { base: value - (value % size), size };
}

export function ipToNumber(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) return false;
  const n = ipToNumber(ip);
  return n >= cidr.base && n < cidr.base + cidr.size;
}

/** Allocates addresses round-robin through the range, so that a freed address is not
 * handed out again soon (a new pod gets a new address); skips .0 and .255 host octets. */
export class AddressPool {
  readonly cidr: Cidr;
  readonly range: string;
  #next = 1;
  #byKey = new Map<string, string>();
  #inUse = new Set<string>();

  constructor(range: string) {
    this.range = range;
    this.cidr = parseCidr(range);
  }

  get(key: string): string | undefined {
    return this.#byKey.get(key);
  }

  /** Keeps `ip` for `key` (an address a live object already has) when it is in range and free. */
  reserve(key: string, ip: string): boolean {
    if (this.#byKey.get(key) === ip) return true;
    if (!cidrContains(this.cidr, ip) || this.#inUse.has(ip)) return false;
    this.release(key);
    this.#byKey.set(key, ip);
    this.#inUse.add(ip);
    return true;
  }

  allocate(key: string): string {
    const existing = this.#byKey.get(key);
    if (existing) return existing;
    for (let tries = 0; tries < this.cidr.size; tries++) {
      const offset = this.#next;
      this.#next = (this.#next + 1) % this.cidr.size;
      const ip = numberToIp(this.cidr.base + offset);
      const last = (this.cidr.base + offset) % 256;
      if (last === 0 || last === 255 || this.#inUse.has(ip)) continue;
      this.#byKey.set(key, ip);
      this.#inUse.add(ip);
      return ip;
    }
    throw new Error(`address range ${this.range} is exhausted`);
  }

  release(key: string): void {
    const ip = this.#byKey.get(key);
    if (ip === undefined) return;
    this.#byKey.delete(key);
    this.#inUse.delete(ip);
  }
}
