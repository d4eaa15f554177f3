// A real mail node process (`mailcluster node --config-dir DIR`) for tests and
// benchmarks: writes its config dir from a typed object (DESIGN.md's "Node
// configuration contract" plus the PARAM extensions in DECISIONS.md), starts it,
// waits for /readyz, and stops, kills, restarts (same spool) or reloads it.
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './addresses.ts';
import { assertPortFree, deathReason, isRunning, makeTempDir, removeTempDir, spawnTracked, stopChild, waitUntil } from './processes.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Node 24 (the machine's `node` is older). */
export const node24 = join(repoRoot, 'node_modules', '.bin', 'node');

/** One `PARAM etrn-cluster <node[/port]> <user> <password>` line. */
export interface EtrnPeer {
  /** The peer's address (or name). */
  node: string;
  /** MAILQv2 port; omitted from the line when undefined. */
  port?: number;
  user: string;
  /** The password, or `@/path/to/file` to read it from a file. */
  password: string;
}

/** One scheduler.auth line: `user:password:ATTRS:IP-ACLs`. */
export interface SchedulerUser {
  user: string;
  password: string;
  /** e.g. 'ETRN'. */
  attrs: string;
  /** e.g. '[127.0.0.0]/8'. */
  acl: string;
}

export interface MailNodeConfig {
  /** `PARAM hostname`. */
  hostname: string;
  /** The address every listener binds (SMTP, MAILQv2, admin). */
  address: string;
  /** Inbound SMTP port (`PARAM BindSmtp <address> <port>`); default: a free port. */
  smtpPort?: number;
  /** MAILQv2 port (`PARAM BindMailq`); default: a free port. */
  mailqPort?: number;
  /** Admin HTTP port (`PARAM BindAdmin`); default: a free port. */
  adminPort?: number;
  /** Write this literal address in the Bind lines instead (e.g. '0.0.0.0' with `env.MAILCLUSTER_BIND_ADDRESS`). */
  bindAs?: string;
  maxsize?: number;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  etrnCluster?: EtrnPeer[];
  relayDomains?: string[];
  relayNetworks?: string[];
  proxyProtocol?: string[];
  /** `PARAM dns-server <ip[:port]>`. */
  dnsServer?: string;
  /** Outbound delivery port (`PARAM smtp-port`). */
  deliveryPort?: number;
  // The extension PARAMs (DECISIONS.md); tests want short timers.
  retryInterval?: number;
  maxRetryInterval?: number;
  queueLifetime?: number;
  maxReceivedHeaders?: number;
  maxRecipients?: number;
  maxConnections?: number;
  deliveryConcurrency?: number;
  // Issue-10 PARAMs (node-image/README.md "Security settings").
  /**
   * The admin token; its SHA-256 goes into `PARAM admin-token-sha256`, and `admin()` sends it
   * as `Authorization: Bearer`. Default: `test-admin-token-<hostname>`; null: no PARAM (protected
   * endpoints answer 403).
   */
  adminToken?: string | null;
  /** `PARAM smtp-greet-pause <s>`. The harness writes 0 unless given (tests connect fast; the node's default is 1 s for untrusted clients). */
  smtpGreetPause?: number;
  /** `PARAM smtp-client-connection-rate-limit <n>` and `-rate-time <s>`. */
  smtpClientConnectionRateLimit?: number;
  smtpClientConnectionRateTime?: number;
  /** `PARAM smtp-auth-users <path>` (a path, e.g. one of extraFiles written under the config dir). */
  smtpAuthUsers?: string;
  /** `PARAM smtp-auth-failure-limit|window|delay`. */
  smtpAuthFailureLimit?: number;
  smtpAuthFailureWindow?: number;
  smtpAuthFailureDelay?: number;
  /** `PARAM etrn-domain-rate-limit <n>`, `etrn-domain-rate-time <s>`, `etrn-relayed-window <s>`; the harness writes 0 (off) for the limit and the window unless given. */
  etrnDomainRateLimit?: number;
  etrnDomainRateTime?: number;
  etrnRelayedWindow?: number;
  /** `PARAM peer-tls-*` (all four together). */
  peerTls?: { caFile: string; certFile: string; keyFile: string; name: string };
  /** `PARAM smtp-tls-security-level`, `smtp-tls-policy <domain> <level>` lines, `smtp-tls-ca-file`. */
  smtpTlsSecurityLevel?: 'none' | 'may' | 'encrypt' | 'verify';
  smtpTlsPolicy?: Record<string, 'none' | 'may' | 'encrypt' | 'verify'>;
  smtpTlsCaFile?: string;
  /** Raw extra lines appended to smtpserver.conf (e.g. a deliberately broken one). */
  extraSmtpserverLines?: string[];
  /** zmailer.conf SELFADDRESSES (the address is NOT added implicitly). */
  selfAddresses?: string[];
  /** zmailer.conf POSTOFFICE; default `<node dir>/spool`. */
  postoffice?: string;
  /** Raw extra zmailer.conf lines. */
  extraZmailerLines?: string[];
  /** scheduler.auth users; default none (an empty file). */
  schedulerAuth?: SchedulerUser[];
  /** Extra files written into the config dir, name -> content (e.g. `etrn-password`). */
  extraFiles?: Record<string, string>;
}

/** The config with every port decided. */
export type ResolvedMailNodeConfig = MailNodeConfig & { smtpPort: number; mailqPort: number; adminPort: number; postoffice: string };

export interface NodeConfigFiles {
  'smtpserver.conf': string;
  'zmailer.conf': string;
  'scheduler.auth': string;
  [extra: string]: string;
}

function param(name: string, ...args: Array<string | number>): string {
  for (const a of args) {
    if (/\s/.test(String(a)) || String(a) === '') throw new Error(`PARAM ${name}: argument ${JSON.stringify(a)} is empty or has whitespace`);
  }
  return ['PARAM', name, ...args.map(String)].join(' ');
}

/** The admin token a test node is configured with (null: none). */
export function adminTokenOf(config: MailNodeConfig): string | null {
  return config.adminToken === undefined ? `test-admin-token-${config.hostname}` : config.adminToken;
}

/** The config dir's files for a resolved config (pure). */
export function renderNodeConfig(config: ResolvedMailNodeConfig): NodeConfigFiles {
  const bind = config.bindAs ?? config.address;
  const lines = ['# written by test/support/mail-node.ts', param('hostname', config.hostname),
    param('BindSmtp', bind, config.smtpPort), param('BindMailq', bind, config.mailqPort), param('BindAdmin', bind, config.adminPort)];
  if (config.maxsize !== undefined) lines.push(param('maxsize', config.maxsize));
  if (config.tlsCertFile) lines.push(param('tls-cert-file', config.tlsCertFile));
  if (config.tlsKeyFile) lines.push(param('tls-key-file', config.tlsKeyFile));
  for (const p of config.etrnCluster ?? []) {
    lines.push(param('etrn-cluster', p.port === undefined ? p.node : `${p.node}/${p.port}`, p.user, p.password));
  }
  for (const d of config.relayDomains ?? []) lines.push(param('relay-domain', d));
  for (const n of config.relayNetworks ?? []) lines.push(param('relay-network', n));
  for (const n of config.proxyProtocol ?? []) lines.push(param('proxy-protocol', n));
  if (config.dnsServer) lines.push(param('dns-server', config.dnsServer));
  if (config.deliveryPort !== undefined) lines.push(param('smtp-port', config.deliveryPort));
  const numeric: Array<[string, number | undefined]> = [
    ['retry-interval', config.retryInterval], ['max-retry-interval', config.maxRetryInterval],
    ['queue-lifetime', config.queueLifetime], ['max-received-headers', config.maxReceivedHeaders],
    ['max-recipients', config.maxRecipients], ['max-connections', config.maxConnections],
    ['delivery-concurrency', config.deliveryConcurrency],
  ];
  for (const [name, value] of numeric) if (value !== undefined) lines.push(param(name, value));
  const token = adminTokenOf(config);
  if (token !== null) lines.push(param('admin-token-sha256', createHash('sha256').update(token).digest('hex')));
  const security: Array<[string, number | string | undefined]> = [
    ['smtp-greet-pause', config.smtpGreetPause ?? 0],
    ['smtp-client-connection-rate-limit', config.smtpClientConnectionRateLimit], ['smtp-client-connection-rate-time', config.smtpClientConnectionRateTime],
    ['smtp-auth-users', config.smtpAuthUsers], ['smtp-auth-failure-limit', config.smtpAuthFailureLimit],
    ['smtp-auth-failure-window', config.smtpAuthFailureWindow], ['smtp-auth-failure-delay', config.smtpAuthFailureDelay],
    // off unless a test asks: the ETRN tests send many ETRNs for one domain to every node
    ['etrn-domain-rate-limit', config.etrnDomainRateLimit ?? 0], ['etrn-domain-rate-time', config.etrnDomainRateTime], ['etrn-relayed-window', config.etrnRelayedWindow ?? 0],
    ['peer-tls-ca-file', config.peerTls?.caFile], ['peer-tls-cert-file', config.peerTls?.certFile], ['peer-tls-key-file', config.peerTls?.keyFile], ['peer-tls-name', config.peerTls?.name],
    ['smtp-tls-security-level', config.smtpTlsSecurityLevel], ['smtp-tls-ca-file', config.smtpTlsCaFile],
  ];
  for (const [name, value] of security) if (value !== undefined) lines.push(param(name, value));
  for (const [domain, level] of Object.entries(config.smtpTlsPolicy ?? {})) lines.push(param('smtp-tls-policy', domain, level));
  lines.push(...(config.extraSmtpserverLines ?? []));

  const zmailer = ['# written by test/support/mail-node.ts', `SELFADDRESSES=${(config.selfAddresses ?? []).join(',')}`,
    `POSTOFFICE=${config.postoffice}`, ...(config.extraZmailerLines ?? [])];
  const auth = (config.schedulerAuth ?? []).map((u) => {
    if ([u.user, u.password, u.attrs].some((f) => f.includes(':'))) throw new Error(`scheduler.auth fields cannot contain ':' (${u.user})`);
    return `${u.user}:${u.password}:${u.attrs}:${u.acl}`;
  });
  return {
    ...(config.extraFiles ?? {}),
    'smtpserver.conf': lines.join('\n') + '\n',
    'zmailer.conf': zmailer.join('\n') + '\n',
    'scheduler.auth': auth.join('\n') + (auth.length ? '\n' : ''),
  };
}

/** Writes the files straight into `dir` (each replaced atomically by rename). */
export function writeConfigFiles(dir: string, files: NodeConfigFiles): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const tmp = join(dir, `.${name}.tmp`);
    writeFileSync(tmp, content);
    renameSync(tmp, join(dir, name));
  }
}

let swapCounter = 0;

/**
 * Writes the files the way the kubelet writes a projected volume: the data in a
 * timestamped dir, `..data` a symlink to it, each file a symlink through `..data`;
 * a change writes a new dir and swaps `..data` atomically, then removes the old dir.
 */
export function writeConfigFilesKubeletStyle(dir: string, files: NodeConfigFiles): void {
  mkdirSync(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[-:.]/g, '_')}.${process.pid}.${swapCounter++}`;
  const dataDir = join(dir, stamp);
  mkdirSync(dataDir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dataDir, name), content);
  const dataLink = join(dir, '..data');
  let previous: string | undefined;
  try { previous = readlinkSync(dataLink); } catch { /* first write */ }
  const tmpLink = join(dir, '..data_tmp');
  rmSync(tmpLink, { force: true });
  symlinkSync(stamp, tmpLink);
  renameSync(tmpLink, dataLink);
  for (const name of Object.keys(files)) {
    const link = join(dir, name);
    let isLink = false;
    try { isLink = lstatSync(link).isSymbolicLink(); } catch { /* absent */ }
    if (isLink) continue;
    // Absent, or a plain file from a non-kubelet write: replace it atomically.
    const tmp = join(dir, `.${name}.link.tmp`);
    rmSync(tmp, { force: true });
    symlinkSync(join('..data', name), tmp);
    renameSync(tmp, link);
  }
  if (previous && previous !== stamp) rmSync(join(dir, previous), { recursive: true, force: true });
}

export interface MailNodeOptions {
  /** Lay the config dir out kubelet-style (`..data` symlinks) from the start. Default false. */
  kubeletStyle?: boolean;
  /** Extra environment (e.g. MAILCLUSTER_BIND_ADDRESS). */
  env?: Record<string, string>;
  /** Bound on the wait for /readyz (default 20 s). */
  readyTimeoutMs?: number;
  /** Start the process (default true); false only writes the config dir. */
  start?: boolean;
  /** Use this dir for config, spool and logs instead of a fresh temp dir (kept at the end). */
  dir?: string;
  /** Run the node from this checkout (e.g. a `git archive` snapshot with node_modules linked); default this repo. */
  root?: string;
  /**
   * Start the node in a session of its own (setsid), as a daemon such as Postfix's master
   * puts itself: with autogrouped scheduling, a busy machine then shares CPU between it and
   * the test's other processes as it does for such a daemon. Default false. Still stopped by PID.
   */
  ownSession?: boolean;
}

export interface ReloadOptions {
  /** 'files': rewrite the files in place (default, or the `..data` swap when kubelet-style); 'sighup': rewrite then SIGHUP. */
  via?: 'files' | 'kubelet' | 'sighup';
}

export interface QueueReport {
  total: number;
  [key: string]: unknown;
}

export interface MailNode {
  config: ResolvedMailNodeConfig;
  /** Root temp dir: `config/`, `spool/` (default POSTOFFICE), `node.log`, `node.stderr.log`. */
  dir: string;
  configDir: string;
  /** pino JSON lines from stdout, appended across restarts. */
  logPath: string;
  stderrPath: string;
  smtp: string;
  /** `address:port` of the MAILQv2 listener. */
  mailq: string;
  adminUrl: string;
  pid(): number | undefined;
  running(): boolean;
  /** Starts the process (again) on the same config and spool and waits for /readyz. */
  start(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  kill9(): Promise<void>;
  /** stop() then start(), same spool. */
  restart(): Promise<void>;
  /** Rewrites the config files (merged into the current config) and optionally signals. */
  reload(change: Partial<MailNodeConfig>, options?: ReloadOptions): Promise<void>;
  /** GET /queue as JSON. */
  queue(): Promise<QueueReport>;
  /** GET /metrics as text. */
  metrics(): Promise<string>;
  /** One sample's value from /metrics (summed over label sets matching `labels`), 0 when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** An admin request (GET unless init says otherwise), sending the node's admin token unless init has an Authorization header; returns status and body. */
  admin(path: string, init?: RequestInit): Promise<{ status: number; body: string }>;
  /** The parsed pino lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** Waits until a log line satisfies `predicate`; returns it. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Stops the process and removes the temp dir. */
  close(): Promise<void>;
}

/** Sums the samples of `name` in a Prometheus text exposition whose labels include `labels` (pure). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[lm[1]] = lm[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** Parses pino JSON lines, skipping anything else (pure). */
export function parseLogLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as Record<string, unknown>); } catch { /* a torn last line */ }
  }
  return out;
}

async function resolveConfig(config: MailNodeConfig, dir: string): Promise<ResolvedMailNodeConfig> {
  return {
    ...config,
    smtpPort: config.smtpPort ?? (await freePort(config.address)),
    mailqPort: config.mailqPort ?? (await freePort(config.address)),
    adminPort: config.adminPort ?? (await freePort(config.address)),
    postoffice: config.postoffice ?? join(dir, 'spool'),
  };
}

/** Writes a node's config dir and (unless `start: false`) starts it and waits until ready. */
export async function startMailNode(initial: MailNodeConfig, options: MailNodeOptions = {}): Promise<MailNode> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? makeTempDir('node');
  let config = await resolveConfig(initial, dir);
  const configDir = join(dir, 'config');
  const logPath = join(dir, 'node.log');
  const stderrPath = join(dir, 'node.stderr.log');
  mkdirSync(config.postoffice, { recursive: true });
  const write = (kubelet: boolean) => {
    const files = renderNodeConfig(config);
    if (kubelet) writeConfigFilesKubeletStyle(configDir, files); else writeConfigFiles(configDir, files);
  };
  write(options.kubeletStyle ?? false);

  let child: ChildProcess | undefined;
  const adminUrl = `http://${config.address}:${config.adminPort}`;
  const stderrTail = () => (existsSync(stderrPath) ? readFileSync(stderrPath, 'utf8').slice(-4000) : '');

  const admin = async (path: string, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    const token = adminTokenOf(config);
    if (token !== null && !headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
    const res = await fetch(adminUrl + path, { ...init, headers, signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  };

  const start = async () => {
    if (child && isRunning(child)) return;
    for (const port of [config.smtpPort, config.mailqPort, config.adminPort]) assertPortFree(config.address, port, `mail node ${config.hostname}`);
    const out = openSync(logPath, 'a');
    const err = openSync(stderrPath, 'a');
    try {
      const root = options.root ?? repoRoot;
      child = spawnTracked(node24, [join(root, 'bin', 'mailcluster.js'), 'node', '--config-dir', configDir], {
        cwd: root,
        stdio: ['ignore', out, err],
        env: { ...process.env, ...options.env },
        detached: options.ownSession ?? false,
      });
    } finally {
      closeSync(out);
      closeSync(err);
    }
    const proc = child;
    try {
      await waitUntil(`mail node ${config.hostname} /readyz at ${adminUrl}`, async () => (await admin('/readyz')).status === 200,
        { timeoutMs: options.readyTimeoutMs ?? 20000, intervalMs: 50, abort: () => deathReason(proc, stderrTail) });
    } catch (e) {
      await stopChild(proc, 'SIGKILL', 1000);
      throw e;
    }
  };

  const stop = async (graceMs = 10000) => { if (child) await stopChild(child, 'SIGTERM', graceMs); };
  const logs = () => (existsSync(logPath) ? parseLogLines(readFileSync(logPath, 'utf8')) : []);

  const handle: MailNode = {
    get config() { return config; },
    dir,
    configDir,
    logPath,
    stderrPath,
    smtp: `${config.address}:${config.smtpPort}`,
    mailq: `${config.address}:${config.mailqPort}`,
    adminUrl,
    pid: () => child?.pid,
    running: () => child !== undefined && isRunning(child),
    start,
    stop,
    kill9: async () => { if (child) await stopChild(child, 'SIGKILL', 1000); },
    restart: async () => { await stop(); await start(); },
    reload: async (change, reloadOptions = {}) => {
      config = { ...config, ...change };
      const kubelet = reloadOptions.via === 'kubelet' || existsSync(join(configDir, '..data'));
      write(kubelet);
      if (reloadOptions.via === 'sighup' && child && isRunning(child)) child.kill('SIGHUP');
    },
    queue: async () => {
      const { status, body } = await admin('/queue');
      if (status !== 200) throw new Error(`GET /queue: ${status} ${body}`);
      return JSON.parse(body) as QueueReport;
    },
    metrics: async () => (await admin('/metrics')).body,
    metric: async (name, labels) => metricValue((await admin('/metrics')).body, name, labels),
    admin,
    logs,
    waitForLog: async (predicate, timeoutMs = 10000) => {
      let found: Record<string, unknown> | undefined;
      await waitUntil(`a matching log line in ${logPath}`, () => {
        found = logs().find(predicate);
        return found !== undefined;
      }, { timeoutMs, intervalMs: 50 });
      return found!;
    },
    close: async () => {
      await stop();
      if (ownDir) removeTempDir(dir);
    },
  };
  if (options.start !== false) {
    try {
      await start();
    } catch (err) {
      if (ownDir) removeTempDir(dir);
      throw err;
    }
  }
  return handle;
}
