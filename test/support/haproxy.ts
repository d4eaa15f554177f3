// haproxy as Addr[0] outside Kubernetes: TCP mode, round-robin over the given
// backends, optionally prefixing each connection with a PROXY v2 header.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './addresses.ts';
import { assertPortFree, deathReason, makeTempDir, removeTempDir, spawnTracked, stopChild, tailOf, waitForPort } from './processes.ts';

export interface Backend { address: string; port: number }

export interface HaproxyOptions {
  address: string;
  /** Default: a free port on `address`. */
  port?: number;
  backends: Backend[];
  /** Prefix every backend connection with a PROXY v2 header (`send-proxy-v2`). */
  proxyV2?: boolean;
  /** TCP health checks every `intervalMs` (default: off, every backend is always tried). */
  healthCheck?: boolean | { intervalMs: number };
  /** Client/server idle timeout (default 60 s). */
  timeoutMs?: number;
  /** Connect to the backends from this address (`source`), so they can trust exactly it; default: the kernel's choice (127.0.0.1). */
  sourceAddress?: string;
}

export interface Haproxy {
  address: string;
  port: number;
  configPath: string;
  stop(): Promise<void>;
}

/** haproxy's configuration file for these options (pure). */
export function renderHaproxyConfig(address: string, port: number, options: Pick<HaproxyOptions, 'backends' | 'proxyV2' | 'healthCheck' | 'timeoutMs' | 'sourceAddress'>): string {
  if (options.backends.length === 0) throw new Error('haproxy needs at least one backend');
  const timeout = options.timeoutMs ?? 60000;
  const check = options.healthCheck
    ? ` check inter ${typeof options.healthCheck === 'object' ? options.healthCheck.intervalMs : 1000} fall 1 rise 1`
    : '';
  const proxy = options.proxyV2 ? ' send-proxy-v2' : '';
  const servers = options.backends.map((b, i) => `  server s${i} ${b.address}:${b.port}${proxy}${check}`);
  return [
    'global',
    '  maxconn 4000',
    '',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    `  timeout client ${timeout}ms`,
    `  timeout server ${timeout}ms`,
    // A backend that refuses is retried on the next one rather than failing the client.
    '  retries 2',
    '  option redispatch',
    '',
    'frontend addr0',
    `  bind ${address}:${port}`,
    '  default_backend nodes',
    '',
    'backend nodes',
    '  balance roundrobin',
    ...(options.sourceAddress ? [`  source ${options.sourceAddress}`] : []),
    ...servers,
    '',
  ].join('\n');
}

export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  const { address } = options;
  const port = options.port ?? (await freePort(address));
  if (options.port !== undefined) assertPortFree(address, port, 'haproxy');
  const dir = makeTempDir('haproxy');
  const configPath = join(dir, 'haproxy.cfg');
  writeFileSync(configPath, renderHaproxyConfig(address, port, options));
  // -db: foreground, no daemon; -q would hide the start-up errors we want to report.
  const child = spawnTracked('/usr/sbin/haproxy', ['-db', '-f', configPath]);
  const stderr = tailOf(child.stderr);
  child.stdout?.resume();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopChild(child, 'SIGTERM', 3000);
    removeTempDir(dir);
  };
  try {
    await waitForPort(address, port, { timeoutMs: 10000, abort: () => deathReason(child, stderr) });
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, port, configPath, stop };
}
