// A private Postfix instance (Debian's binaries, its own `-c` config dir and queue
// under a temp dir) that accepts SMTP on one 127.x address:port from `mynetworks`
// and relays everything to one next hop: the reference MTA for the relay benchmark.
// Its queue is Postfix's default, durable one (fsync before 250).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPortFree, waitForPort, waitUntil } from './processes.ts';
import { atTeardown } from './hooks.ts';

export interface PostfixOptions {
  /** Address and port of the inbound SMTP service (master.cf service name `address:port`). */
  address: string;
  port: number;
  /** Next hop for all mail, `ip:port` (a `[ip]:port` relayhost: no MX lookup). */
  relayTo: string;
  /** Clients allowed to relay, e.g. ['127.0.0.0/8']. */
  mynetworks: string[];
  hostname?: string;
  /** Parallel deliveries to the next hop (default 20, Postfix's default). */
  destinationConcurrency?: number;
  /** smtpd processes (default 100, Postfix's default). */
  processLimit?: number;
}

export interface PostfixInstance {
  dir: string;
  queueDirectory: string;
  logFile: string;
  /** Messages in the queue (incoming, active, deferred, hold, maildrop), by counting queue files. */
  queued(): number;
  /** Waits until the queue is empty, at most `timeoutMs`. */
  waitForEmptyQueue(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** main.cf for the instance (pure). */
export function renderPostfixMainCf(dir: string, options: PostfixOptions): string {
  const relay = /^\[/.test(options.relayTo) ? options.relayTo : `[${options.relayTo.replace(/:(\d+)$/, ']:$1')}`;
  return [
    'compatibility_level = 3.6',
    `queue_directory = ${join(dir, 'queue')}`,
    `data_directory = ${join(dir, 'data')}`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    // postfix-files (for set-permissions/check) stays in Debian's place.
    'meta_directory = /etc/postfix',
    `maillog_file_prefixes = ${dir}`,
    `maillog_file = ${join(dir, 'maillog')}`,
    `myhostname = ${options.hostname ?? 'postfix.bench.test'}`,
    'mydomain = bench.test',
    'myorigin = $myhostname',
    'mydestination =',
    'local_recipient_maps =',
    'alias_maps =',
    'alias_database =',
    // Postfix checks inet_interfaces against interface addresses and `lo` only carries
    // 127.0.0.1; the master.cf service name binds the real address, and the SMTP client
    // sends from it through smtp_bind_address.
    'inet_interfaces = loopback-only',
    `smtp_bind_address = ${options.address}`,
    'inet_protocols = ipv4',
    `mynetworks = ${options.mynetworks.join(' ')}`,
    'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    `relayhost = ${relay}`,
    'smtp_dns_support_level = disabled',
    // No reverse lookup of the benchmark client: DNS here is not part of what is measured.
    'smtpd_peername_lookup = no',
    'smtp_tls_security_level = none',
    'smtpd_tls_security_level = none',
    `default_destination_concurrency_limit = ${options.destinationConcurrency ?? 20}`,
    `smtp_destination_concurrency_limit = ${options.destinationConcurrency ?? 20}`,
    `relay_destination_concurrency_limit = ${options.destinationConcurrency ?? 20}`,
    `default_process_limit = ${options.processLimit ?? 100}`,
    // The benchmark client opens many sessions from one address.
    'smtpd_client_connection_count_limit = 0',
    'smtpd_client_connection_rate_limit = 0',
    'smtpd_client_message_rate_limit = 0',
    'anvil_rate_time_unit = 60s',
    'biff = no',
    'smtputf8_enable = no',
    'message_size_limit = 10240000',
    'local_transport = error:local delivery is disabled',
    '',
  ].join('\n');
}

/** master.cf for the instance: no chroot, inbound SMTP only on address:port (pure). */
export function renderPostfixMasterCf(options: PostfixOptions): string {
  const services: Array<[string, string, string, string, string, string, string, ...string[]]> = [
    [`${options.address}:${options.port}`, 'inet', 'n', '-', 'n', '-', '-', 'smtpd'],
    ['pickup', 'unix', 'n', '-', 'n', '60', '1', 'pickup'],
    ['cleanup', 'unix', 'n', '-', 'n', '-', '0', 'cleanup'],
    ['qmgr', 'unix', 'n', '-', 'n', '300', '1', 'qmgr'],
    ['tlsmgr', 'unix', '-', '-', 'n', '1000?', '1', 'tlsmgr'],
    ['rewrite', 'unix', '-', '-', 'n', '-', '-', 'trivial-rewrite'],
    ['bounce', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['defer', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['trace', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['verify', 'unix', '-', '-', 'n', '-', '1', 'verify'],
    ['flush', 'unix', 'n', '-', 'n', '1000?', '0', 'flush'],
    ['proxymap', 'unix', '-', '-', 'n', '-', '-', 'proxymap'],
    ['proxywrite', 'unix', '-', '-', 'n', '-', '1', 'proxymap'],
    ['smtp', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
    ['relay', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
    ['showq', 'unix', 'n', '-', 'n', '-', '-', 'showq'],
    ['error', 'unix', '-', '-', 'n', '-', '-', 'error'],
    ['retry', 'unix', '-', '-', 'n', '-', '-', 'error'],
    ['discard', 'unix', '-', '-', 'n', '-', '-', 'discard'],
    ['anvil', 'unix', '-', '-', 'n', '-', '1', 'anvil'],
    ['scache', 'unix', '-', '-', 'n', '-', '1', 'scache'],
    ['postlog', 'unix-dgram', 'n', '-', 'n', '-', '1', 'postlogd'],
  ];
  return services.map((s) => s.join('  ')).join('\n') + '\n';
}

function postfix(dir: string, ...args: string[]): string {
  const run = spawnSync('/usr/sbin/postfix', ['-c', dir, ...args], { encoding: 'utf8', timeout: 60000 });
  if (run.status !== 0) {
    // postfix only writes its reasons to stderr when that is a terminal: ask again through one.
    const again = spawnSync('script', ['-qec', ['/usr/sbin/postfix', '-c', dir, ...args].join(' '), '/dev/null'], { encoding: 'utf8', timeout: 60000 });
    throw new Error(`postfix -c ${dir} ${args.join(' ')} failed (${run.status}): ${run.stderr}${run.stdout}${again.stdout}`.trim());
  }
  return run.stdout + run.stderr;
}

function countFiles(dir: string): number {
  let n = 0;
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return 0; }
  for (const e of entries) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

export async function startPostfix(options: PostfixOptions): Promise<PostfixInstance> {
  if (process.getuid?.() !== 0) throw new Error('a private Postfix instance needs root (master runs as root, daemons as postfix)');
  assertPortFree(options.address, options.port, 'postfix');
  // Not a tracked temp dir: at exit, `postfix abort` needs it before it is removed.
  const dir = mkdtempSync(join(tmpdir(), 'mailcluster-postfix-'));
  const queueDirectory = join(dir, 'queue');
  mkdirSync(queueDirectory);
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'main.cf'), renderPostfixMainCf(dir, options));
  writeFileSync(join(dir, 'master.cf'), renderPostfixMasterCf(options));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try { postfix(dir, 'stop'); } catch { try { postfix(dir, 'abort'); } catch { /* not running */ } }
    // `postfix stop` returns before master is gone; wait for its pid file to go.
    await waitUntil('postfix master to exit', () => {
      try { execFileSync('/usr/sbin/postfix', ['-c', dir, 'status'], { stdio: 'ignore' }); return false; } catch { return true; }
    }, { timeoutMs: 15000, intervalMs: 100 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  atTeardown(stop);
  process.on('exit', () => {
    if (stopped) return;
    spawnSync('/usr/sbin/postfix', ['-c', dir, 'abort'], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    // Ownership/modes of the queue and data dirs (the temp dir itself must be reachable by postfix).
    execFileSync('chmod', ['755', dir]);
    postfix(dir, 'set-permissions');
    postfix(dir, 'check');
    postfix(dir, 'start');
    await waitForPort(options.address, options.port, { timeoutMs: 15000 });
  } catch (err) {
    await stop();
    throw err;
  }
  const queued = () => ['incoming', 'active', 'deferred', 'hold', 'maildrop'].reduce((n, q) => n + countFiles(join(queueDirectory, q)), 0);
  return {
    dir,
    queueDirectory,
    logFile: join(dir, 'maillog'),
    queued,
    waitForEmptyQueue: (timeoutMs = 120000) => waitUntil(`postfix queue ${queueDirectory} to empty`, () => queued() === 0, { timeoutMs, intervalMs: 100 }),
    stop,
  };
}
