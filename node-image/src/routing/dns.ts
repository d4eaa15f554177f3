// The DNS edge of routing: MX (or A/AAAA as preference 0) through the configured resolver,
// cached briefly; the decision itself is chooseMxHosts in route.ts.
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { chooseMxHosts, domainLiteral, selfSet } from './route.ts';
import type { MxCandidate, RouteDecision, SelfSet } from './route.ts';

const PERMANENT = new Set(['ENOTFOUND', 'NXDOMAIN']);
const NO_DATA = new Set(['ENODATA', 'ENOTFOUND', 'NXDOMAIN']);

export class TemporaryDnsError extends Error {}

export class MxRouter {
  private resolver = new Resolver({ timeout: 2000, tries: 2 });
  private self: SelfSet = selfSet([]);
  private cache = new Map<string, { at: number; records: MxCandidate[] | { fail: string } }>();
  private readonly cacheMs: number;

  constructor(cacheMs = 5000) {
    this.cacheMs = cacheMs;
  }

  configure(dnsServers: string[], selfAddresses: string[]): void {
    const r = new Resolver({ timeout: 2000, tries: 2 });
    if (dnsServers.length > 0) r.setServers(dnsServers);
    this.resolver = r;
    this.self = selfSet(selfAddresses);
    this.cache.clear();
  }

  /**
   * A and AAAA of a host. "No such name" and "no such record" are answers (no address);
   * a timeout, SERVFAIL or refusal is not, and when neither family gave an address it
   * throws TemporaryDnsError: the mail waits for the resolver, it does not bounce.
   */
  private async addresses(host: string): Promise<string[]> {
    if (net.isIP(host)) return [host];
    const results = await Promise.allSettled([this.resolver.resolve4(host), this.resolver.resolve6(host)]);
    const found = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    if (found.length > 0) return found;
    const temporary = results.map((r) => (r.status === 'rejected' ? String((r.reason as NodeJS.ErrnoException).code ?? (r.reason as Error).message) : ''))
      .find((code) => code !== '' && !NO_DATA.has(code));
    if (temporary) throw new TemporaryDnsError(`address lookup for ${host} failed: ${temporary}`);
    return [];
  }

  /** MX records with addresses; throws TemporaryDnsError for lookups that may work later. */
  async lookup(domain: string): Promise<MxCandidate[] | { fail: string }> {
    const literal = domainLiteral(domain);
    if (literal) return [{ exchange: literal, priority: 0, addresses: [literal] }];
    const hit = this.cache.get(domain);
    if (hit && Date.now() - hit.at < this.cacheMs) return hit.records;
    let records: MxCandidate[] | { fail: string };
    try {
      const mx = await this.resolver.resolveMx(domain);
      // an MX host whose address lookup failed for now has no address this time (another MX may be usable; none: defer)
      records = await Promise.all(mx.map(async (r) => ({ exchange: r.exchange, priority: r.priority, addresses: r.exchange ? await this.addresses(r.exchange).catch(() => []) : [] })));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!NO_DATA.has(code)) throw new TemporaryDnsError(`MX lookup for ${domain} failed: ${code || (err as Error).message}`);
      const addrs = await this.addresses(domain);
      if (addrs.length > 0) records = [{ exchange: domain, priority: 0, addresses: addrs }];
      else if (PERMANENT.has(code)) records = { fail: `domain ${domain} not found` };
      else records = { fail: `no MX or address records for ${domain}` };
    }
    this.cache.set(domain, { at: Date.now(), records });
    return records;
  }

  async route(domain: string): Promise<RouteDecision> {
    try {
      const records = await this.lookup(domain);
      if (!Array.isArray(records)) return { kind: 'fail', reason: records.fail };
      return chooseMxHosts(domain, records, this.self);
    } catch (err) {
      return { kind: 'defer', reason: (err as Error).message };
    }
  }
}
