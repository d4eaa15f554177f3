// A real DNS server (dnsmasq) on one 127.x address (or, with `inside`, on a peer address in
// local mode's node namespace) that answers only the MX, A, AAAA and TXT records a test gives
// it: no upstream, no /etc/hosts, no other interface.
import { Resolver } from 'node:dns/promises';
import { freePort } from './addresses.ts';
import type { InNamespace } from './inside.ts';
import { assertPortFree, deathReason, spawnTracked, stopChild, tailOf, waitUntil } from './processes.ts';

export interface MxRecord { domain: string; host: string; preference: number }
export interface ARecord { name: string; ip: string }

export interface DnsOptions {
  address: string;
  /** Default: a free port (TCP and UDP) on `address`. */
  port?: number;
  mx?: MxRecord[];
  a?: ARecord[];
  aaaa?: ARecord[];
  /** TXT records (one string each, no commas), e.g. `_mta-sts.example.test` = `v=STSv1; id=1`. */
  txt?: Array<{ name: string; text: string }>;
  /**
   * Runs dnsmasq inside a network namespace (KubeletNode.netnsCommand) on an address there;
   * `port` defaults to 53, and readiness is a TCP connection through `dial` (dnsmasq opens its
   * TCP and UDP sockets together; UDP is not reachable from the host).
   */
  inside?: InNamespace;
}

export interface DnsServer {
  address: string;
  port: number;
  /** `ip:port`, the form `PARAM dns-server` and `Resolver.setServers` take. */
  server: string;
  stop(): Promise<void>;
}

/** dnsmasq's arguments for these records (pure, for inspection and tests). */
export function dnsmasqArgs(address: string, port: number, options: Pick<DnsOptions, 'mx' | 'a' | 'aaaa' | 'txt'>): string[] {
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--bind-interfaces',
    `--listen-address=${address}`,
    `--port=${port}`,
    '--pid-file=',
    '--user=root',
    '--log-facility=-',
    '--cache-size=0',
    '--local-ttl=1',
    // Authoritative for everything: a name without the asked type is NODATA, an unknown one NXDOMAIN (never REFUSED).
    '--local=/#/',
  ];
  for (const mx of options.mx ?? []) {
    if (mx.domain.includes(',') || mx.host.includes(',')) throw new Error(`bad MX record ${JSON.stringify(mx)}`);
    args.push(`--mx-host=${mx.domain},${mx.host},${mx.preference}`);
  }
  // One --host-record per name, carrying all its IPv4 and IPv6 addresses.
  const byName = new Map<string, string[]>();
  for (const r of [...(options.a ?? []), ...(options.aaaa ?? [])]) {
    byName.set(r.name, [...(byName.get(r.name) ?? []), r.ip]);
  }
  for (const [name, ips] of byName) args.push(`--host-record=${name},${ips.join(',')}`);
  for (const t of options.txt ?? []) {
    if (t.name.includes(',') || t.text.includes(',')) throw new Error(`bad TXT record ${JSON.stringify(t)}`);
    args.push(`--txt-record=${t.name},${t.text}`);
  }
  return args;
}

export async function startDns(options: DnsOptions): Promise<DnsServer> {
  const { address, inside } = options;
  const port = options.port ?? (inside ? 53 : await freePort(address, { udp: true }));
  if (options.port !== undefined && !inside) assertPortFree(address, port, 'dnsmasq');
  const [cmd, args] = inside ? inside.command('/usr/sbin/dnsmasq', dnsmasqArgs(address, port, options)) : ['/usr/sbin/dnsmasq', dnsmasqArgs(address, port, options)];
  const child = spawnTracked(cmd, args);
  const stderr = tailOf(child.stderr);
  child.stdout?.resume();
  const server = `${address}:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopChild(child, 'SIGTERM', 3000);
  };
  try {
    // Ready when it answers a query over UDP (the way resolvers ask first).
    const probeName = options.mx?.[0]?.domain ?? options.a?.[0]?.name ?? options.aaaa?.[0]?.name ?? 'probe.invalid';
    if (inside) {
      await waitUntil(`dnsmasq on ${server} (inside the namespace)`, async () => {
        const socket = await inside.dial({ address, port }).catch(() => undefined);
        socket?.destroy();
        return !!socket;
      }, { timeoutMs: 10000, abort: () => deathReason(child, stderr) });
      return { address, port, server, stop };
    }
    await waitUntil(`dnsmasq on ${server}`, async () => {
      const resolver = new Resolver({ timeout: 300, tries: 1 });
      resolver.setServers([server]);
      try {
        await resolver.resolveAny(probeName);
      } catch (err) {
        // NOTFOUND/NODATA/REFUSED are answers; only a timeout or refusal to connect means "not up".
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ETIMEOUT' || code === 'ECONNREFUSED') throw err;
      }
      return true;
    }, { timeoutMs: 10000, abort: () => deathReason(child, stderr) });
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, port, server, stop };
}
