// Reads a config directory into a NodeConfig: the only config code that touches files.
import { readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { parseSchedulerAuth, parseSmtpserverConf, parseZmailerConf } from './parse.ts';
import { ConfigError } from './types.ts';
import { loadSecurity } from './security-load.ts';
import type { BindAddress, NodeConfig } from './types.ts';

export const SMTPSERVER_CONF = 'smtpserver.conf';
export const ZMAILER_CONF = 'zmailer.conf';
export const SCHEDULER_AUTH = 'scheduler.auth';

export type Env = Record<string, string | undefined>;

/** DECISIONS.md: absolute paths live under MAILCLUSTER_ROOT when it is set (a node run as a plain process by tests). */
export function resolveUnderRoot(p: string, env: Env): string {
  const root = env.MAILCLUSTER_ROOT;
  if (root && path.isAbsolute(p)) return path.join(root, p);
  return p;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** Defaults, and MAILCLUSTER_BIND_ADDRESS in place of a wildcard address. */
export function bindAddress(given: BindAddress | undefined, defaultPort: number, env: Env): BindAddress {
  let address = given?.address ?? '0.0.0.0';
  const port = given && !Number.isNaN(given.port) ? given.port : defaultPort;
  if (isWildcard(address) && env.MAILCLUSTER_BIND_ADDRESS) address = env.MAILCLUSTER_BIND_ADDRESS;
  return { address, port };
}

export interface TlsMaterial { cert: Buffer; key: Buffer }

export interface LoadedConfig {
  config: NodeConfig;
  /** The certificate and key read when tls is set, already checked to form a usable context. */
  tlsMaterial: TlsMaterial | null;
  /** Every file this config depends on outside the config dir (for the watcher). */
  extraFiles: string[];
}

function readText(file: string, shown: string, required: boolean): string | null {
  if (!existsSync(file)) {
    if (required) throw new ConfigError(shown, 0, 'file not found');
    return null;
  }
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(shown, 0, `cannot read: ${(err as Error).message}`);
  }
}

/** The ConfigMap's files as text, read from the API server instead of the mounted directory. */
export interface ConfigMapContent {
  /** How errors name it, e.g. `configmap ns/relay-0-config`. */
  shownAs: string;
  smtpserverConf: string;
  zmailerConf: string;
}

/** The two files a node's ConfigMap holds, as they are in the directory now (null: missing). */
export function readConfigMapFiles(configDir: string, env: Env = process.env): { smtpserverConf: string | null; zmailerConf: string | null } {
  const dir = resolveUnderRoot(configDir, env);
  const read = (name: string): string | null => { try { return readFileSync(path.join(dir, name), 'utf8'); } catch { return null; } };
  return { smtpserverConf: read(SMTPSERVER_CONF), zmailerConf: read(ZMAILER_CONF) };
}

/**
 * Loads and validates the directory; throws ConfigError naming file and line. With `fromApi`,
 * smtpserver.conf and zmailer.conf come from that content (the ConfigMap as the API server
 * has it) and the rest (the Secrets' files) from the directory.
 */
export function loadConfigDir(configDir: string, env: Env = process.env, fromApi?: ConfigMapContent): LoadedConfig {
  const dir = resolveUnderRoot(configDir, env);
  const shownPath = (name: string) => (fromApi && (name === SMTPSERVER_CONF || name === ZMAILER_CONF) ? `${fromApi.shownAs} ${name}` : path.join(configDir, name));
  const smtpFile = shownPath(SMTPSERVER_CONF);
  const zmFile = shownPath(ZMAILER_CONF);
  const authFile = shownPath(SCHEDULER_AUTH);

  const smtpText = fromApi ? fromApi.smtpserverConf : readText(path.join(dir, SMTPSERVER_CONF), smtpFile, true)!;
  const zmText = fromApi ? fromApi.zmailerConf : readText(path.join(dir, ZMAILER_CONF), zmFile, true)!;
  const authText = readText(path.join(dir, SCHEDULER_AUTH), authFile, false);

  const s = parseSmtpserverConf(smtpText, smtpFile);
  const z = parseZmailerConf(zmText, zmFile);
  const schedulerAuth = authText === null ? [] : parseSchedulerAuth(authText, authFile);
  const extraFiles: string[] = [];

  const etrnCluster = s.etrnCluster.map((p) => {
    let password = p.password;
    if (p.passwordFile !== undefined) {
      const real = resolveUnderRoot(p.passwordFile, env);
      extraFiles.push(real);
      try {
        password = readFileSync(real, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw new ConfigError(smtpFile, p.line, `etrn-cluster password file ${p.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    return { host: p.host, port: p.port, user: p.user, password };
  });

  let tlsFiles: NodeConfig['tls'] = null;
  let tlsMaterial: TlsMaterial | null = null;
  if (s.tlsCertFile !== undefined && s.tlsKeyFile !== undefined) {
    tlsFiles = { certFile: resolveUnderRoot(s.tlsCertFile, env), keyFile: resolveUnderRoot(s.tlsKeyFile, env) };
    extraFiles.push(tlsFiles.certFile, tlsFiles.keyFile);
    try {
      tlsMaterial = { cert: readFileSync(tlsFiles.certFile), key: readFileSync(tlsFiles.keyFile) };
      tls.createSecureContext({ cert: tlsMaterial.cert, key: tlsMaterial.key });
    } catch (err) {
      throw new ConfigError(smtpFile, s.tlsLine ?? 0, `TLS certificate/key ${s.tlsCertFile} ${s.tlsKeyFile}: ${(err as Error).message}`);
    }
  }

  const bindSmtp = bindAddress(s.bindSmtp, 25, env);
  const outboundAddress = env.MAILCLUSTER_BIND_ADDRESS || (isWildcard(bindSmtp.address) ? undefined : bindSmtp.address);
  const retryInterval = s.retryInterval ?? 60;
  const maxSize = s.maxSize ?? 10 * 1024 * 1024;

  const config: NodeConfig = {
    configDir,
    hostname: s.hostname ?? os.hostname(),
    bindSmtp,
    bindMailq: bindAddress(s.bindMailq, 174, env),
    bindAdmin: bindAddress(s.bindAdmin, 8025, env),
    maxSize,
    tls: tlsFiles,
    etrnCluster,
    relayDomains: s.relayDomains,
    relayNetworks: s.relayNetworks,
    proxyProtocol: s.proxyProtocol,
    dnsServers: s.dnsServers,
    smtpPort: s.smtpPort ?? 25,
    selfAddresses: z.selfAddresses,
    postOffice: resolveUnderRoot(z.postOffice ?? '/var/spool/mailcluster', env),
    schedulerAuth,
    outboundAddress,
    retryInterval,
    maxRetryInterval: Math.max(s.maxRetryInterval ?? 3600, retryInterval),
    queueLifetime: s.queueLifetime ?? 432000,
    maxReceivedHeaders: s.maxReceivedHeaders ?? 30,
    maxRecipients: s.maxRecipients ?? 100,
    maxConnections: s.maxConnections ?? 1000,
    deliveryConcurrency: s.deliveryConcurrency ?? 20,
    security: loadSecurity(s.security, (p) => resolveUnderRoot(p, env), smtpFile, extraFiles),
    queueMinFree: s.queueMinFree ?? 4 * maxSize,
  };
  return { config, tlsMaterial, extraFiles };
}
