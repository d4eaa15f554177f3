// MTA-STS (RFC 8461) for outbound delivery, when `PARAM mta-sts on`: the TXT record
// `_mta-sts.<domain>` announces a policy, fetched over verified HTTPS from
// `https://mta-sts.<domain>/.well-known/mta-sts.txt` and cached for its max_age. In `enforce`
// mode only MX hosts that match the policy's `mx:` patterns are used, with TLS verified
// (level `verify`); `testing` and `none` change nothing (logged). A policy that cannot be
// fetched while a cached one is valid keeps the cached one; with none cached the domain has
// no policy (RFC 8461 section 5.1). Parsing and matching are pure; fetching is at the edge.
import { Resolver } from 'node:dns/promises';
import https from 'node:https';
import tls from 'node:tls';
import type { LookupFunction } from 'node:net';
import { MxRouter } from './dns.ts';
import type { RouteDecision } from './route.ts';

export interface StsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  mx: string[];
  maxAge: number;
}

/** The policy id from the TXT records of `_mta-sts.<domain>`, or null (none, or more than one STSv1 record). */
export function parseStsTxt(records: string[][]): string | null {
  const sts = records.map((chunks) => chunks.join('')).filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (sts.length !== 1) return null;
  const m = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(sts[0]);
  return m ? m[1] : null;
}

/** Parses the policy file; an Error for anything RFC 8461 section 3.2 does not allow. */
export function parseStsPolicy(text: string): StsPolicy | Error {
  const fields = new Map<string, string[]>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^([A-Za-z0-9_]+)\s*:\s*(.*)$/.exec(line);
    if (!m) return new Error(`bad policy line ${JSON.stringify(line)}`);
    fields.set(m[1], [...(fields.get(m[1]) ?? []), m[2].trim()]);
  }
  if (fields.get('version')?.[0] !== 'STSv1') return new Error('policy version is not STSv1');
  const mode = fields.get('mode')?.[0];
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return new Error(`bad policy mode ${JSON.stringify(mode)}`);
  const maxAge = Number(fields.get('max_age')?.[0]);
  if (!/^\d{1,10}$/.test(fields.get('max_age')?.[0] ?? '') || maxAge > 31557600) return new Error('bad policy max_age');
  const mx = (fields.get('mx') ?? []).map((p) => p.toLowerCase().replace(/\.$/, ''));
  if (mode !== 'none' && mx.length === 0) return new Error('policy without mx');
  return { mode, mx, maxAge };
}

/** RFC 8461 section 4.1: `mx.example.com` exactly, `*.example.com` one leftmost label. */
export function mxMatches(host: string, patterns: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => {
    if (p.startsWith('*.')) {
      const rest = p.slice(1); // ".example.com"
      return h.endsWith(rest) && h.length > rest.length && !h.slice(0, h.length - rest.length).includes('.');
    }
    return h === p;
  });
}

export interface MtaStsSettings {
  enabled: boolean;
  dnsServers: string[];
  /** Extra CA (PEM) trusted for the policy host besides Node's roots (PARAM smtp-tls-ca-file). */
  ca?: string;
  fetchTimeoutMs?: number;
}

interface CacheEntry { id: string; policy: StsPolicy; expires: number; checked: number }

/** How long a TXT answer (a policy id, or none) is trusted before it is asked again. */
const TXT_RECHECK_MS = 60_000;

/** Looks up, fetches and caches policies; `onEnforce` reports the set of domains in enforce mode when it changes. */
export class MtaStsResolver {
  #settings: MtaStsSettings = { enabled: false, dnsServers: [] };
  #resolver = new Resolver({ timeout: 2000, tries: 2 });
  readonly #cache = new Map<string, CacheEntry>();
  /** Domains without a policy, by when that was seen (not asked again for TXT_RECHECK_MS). */
  readonly #none = new Map<string, number>();
  /** Failed fetches by domain: not tried again for TXT_RECHECK_MS (a dead policy host must not stall every attempt). */
  readonly #failed = new Map<string, number>();
  readonly #onEnforce: (domains: string[]) => void;
  readonly #log: (msg: string, details: Record<string, unknown>) => void;

  constructor(onEnforce: (domains: string[]) => void, log: (msg: string, details: Record<string, unknown>) => void) {
    this.#onEnforce = onEnforce;
    this.#log = log;
  }

  configure(s: MtaStsSettings): void {
    this.#settings = s;
    const r = new Resolver({ timeout: 2000, tries: 2 });
    if (s.dnsServers.length > 0) r.setServers(s.dnsServers);
    this.#resolver = r;
    this.#none.clear();
    this.#failed.clear();
    if (!s.enabled && this.#cache.size > 0) { this.#cache.clear(); this.#onEnforce([]); }
  }

  /** Domains whose cached policy is in enforce mode. */
  enforced(): string[] {
    return [...this.#cache].filter(([, e]) => e.policy.mode === 'enforce').map(([d]) => d);
  }

  async policyFor(domain: string, now = Date.now()): Promise<StsPolicy | null> {
    if (!this.#settings.enabled) return null;
    const d = domain.toLowerCase().replace(/\.$/, '');
    const cached = this.#cache.get(d);
    if (cached && cached.expires > now && now - cached.checked < TXT_RECHECK_MS) return cached.policy;
    const none = this.#none.get(d);
    if (!cached && none !== undefined && now - none < TXT_RECHECK_MS) return null;
    let id: string | null;
    try {
      id = parseStsTxt(await this.#resolver.resolveTxt(`_mta-sts.${d}`));
    } catch {
      id = null; // NXDOMAIN/NODATA or a failure: a cached policy stays in force (section 5.1)
      if (cached && cached.expires > now) return cached.policy;
    }
    if (id === null) {
      if (cached && cached.expires > now) return cached.policy;
      this.#none.set(d, now);
      if (this.#none.size > 10_000) this.#none.delete(this.#none.keys().next().value as string);
      return null;
    }
    if (cached && cached.id === id && cached.expires > now) { cached.checked = now; return cached.policy; }
    const failedAt = this.#failed.get(d);
    if (failedAt !== undefined && now - failedAt < TXT_RECHECK_MS) return cached && cached.expires > now ? cached.policy : null;
    try {
      const parsed = parseStsPolicy(await this.#fetch(d));
      if (parsed instanceof Error) throw parsed;
      const before = this.enforced().join(',');
      this.#cache.set(d, { id, policy: parsed, expires: now + parsed.maxAge * 1000, checked: now });
      this.#failed.delete(d);
      this.#log('MTA-STS policy fetched', { domain: d, id, mode: parsed.mode, mx: parsed.mx, maxAge: parsed.maxAge });
      if (this.enforced().join(',') !== before) this.#onEnforce(this.enforced());
      return parsed;
    } catch (err) {
      this.#log('MTA-STS policy fetch failed', { domain: d, id, err: (err as Error).message });
      this.#failed.set(d, now);
      if (this.#failed.size > 10_000) this.#failed.delete(this.#failed.keys().next().value as string);
      return cached && cached.expires > now ? cached.policy : null;
    }
  }

  #fetch(domain: string): Promise<string> {
    const host = `mta-sts.${domain}`;
    const resolver = this.#resolver;
    const lookup: LookupFunction = (hostname, options, cb) => {
      resolver.resolve4(hostname).then(
        (ips) => {
          if ((options as { all?: boolean }).all) (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, ips.map((address) => ({ address, family: 4 })));
          else cb(null, ips[0], 4);
        },
        (err: NodeJS.ErrnoException) => cb(err, '', 4),
      );
    };
    const ca = this.#settings.ca ? [...tls.rootCertificates, this.#settings.ca] : undefined;
    return new Promise((resolve, reject) => {
      const req = https.get({ host, servername: host, port: 443, path: '/.well-known/mta-sts.txt', ca, lookup, rejectUnauthorized: true, timeout: this.#settings.fetchTimeoutMs ?? 10_000, headers: { 'user-agent': 'mailcluster' } }, (res) => {
        if (res.statusCode !== 200) { res.resume(); reject(new Error(`HTTP ${res.statusCode} from ${host}`)); return; }
        if (!/^text\/plain\b/i.test(String(res.headers['content-type'] ?? ''))) { res.resume(); reject(new Error('policy is not text/plain')); return; }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => { size += c.length; if (size > 65536) { req.destroy(new Error('policy larger than 64 KiB')); return; } chunks.push(c); });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`policy fetch from ${host} timed out`)));
      req.on('error', reject);
    });
  }
}

/** The MX router with MTA-STS applied: in enforce mode only policy-matching MX hosts remain. */
export class StsMxRouter extends MxRouter {
  readonly sts: MtaStsResolver;

  constructor(cacheMs: number, sts: MtaStsResolver) {
    super(cacheMs);
    this.sts = sts;
  }

  override async route(domain: string): Promise<RouteDecision> {
    const decision = await super.route(domain);
    if (decision.kind !== 'deliver') return decision;
    const policy = await this.sts.policyFor(domain);
    if (!policy || policy.mode !== 'enforce') return decision;
    const hosts = decision.hosts.filter((h) => mxMatches(h.exchange, policy.mx));
    if (hosts.length === 0) return { kind: 'defer', reason: `MTA-STS (enforce): no MX host of ${domain} matches the policy (${policy.mx.join(', ')})` };
    return { kind: 'deliver', hosts };
  }
}
