// The issue-10 PARAMs of smtpserver.conf (admin credential, SMTP AUTH users, early talkers,
// connection rate, AUTH failure limits, ETRN limits, peer TLS, outbound TLS policy): parsed
// here, pure, so that parse.ts only delegates to parseSecurityParam. Defaults live in
// securityDefaults (documented in node-image/README.md).
import { isHostname } from './parse.ts';

export type TlsSecurityLevel = 'none' | 'may' | 'encrypt' | 'verify';
export const TLS_LEVELS: readonly TlsSecurityLevel[] = ['none', 'may', 'encrypt', 'verify'];

/** What smtpserver.conf says about them (paths not yet resolved). */
export interface SecurityParams {
  /** `PARAM admin-token-sha256 <64 hex> | @<path>`. */
  adminTokenSha256?: { hex: string } | { file: string };
  adminTokenLine?: number;
  /** `PARAM smtp-auth-users <path>`. */
  smtpAuthUsers?: string;
  smtpAuthUsersLine?: number;
  smtpGreetPause?: number;
  smtpClientConnectionRateLimit?: number;
  smtpClientConnectionRateTime?: number;
  smtpAuthFailureLimit?: number;
  smtpAuthFailureWindow?: number;
  smtpAuthFailureDelay?: number;
  etrnDomainRateLimit?: number;
  etrnDomainRateTime?: number;
  etrnRelayedWindow?: number;
  peerTlsCaFile?: string;
  peerTlsCertFile?: string;
  peerTlsKeyFile?: string;
  peerTlsName?: string;
  peerTlsLine?: number;
  smtpTlsSecurityLevel?: TlsSecurityLevel;
  smtpTlsPolicy: Record<string, TlsSecurityLevel>;
  smtpTlsCaFile?: string;
  smtpTlsLine?: number;
  /** `PARAM mta-sts on|off`. */
  mtaSts?: boolean;
}

export function emptySecurityParams(): SecurityParams {
  return { smtpTlsPolicy: {} };
}

/** Defaults, seconds for times (Postfix's names in comments). */
export const securityDefaults = {
  /** postscreen_greet_wait idea, shorter: untrusted clients only; 0 turns it off. */
  smtpGreetPause: 1,
  /** smtpd_client_connection_rate_limit: 0 = off (as Postfix; behind a SNAT load balancer every client shares one address). */
  smtpClientConnectionRateLimit: 0,
  /** anvil_rate_time_unit. */
  smtpClientConnectionRateTime: 60,
  /** Failed AUTH attempts per client in the window before 421 (smtpd_hard_error_limit-like). */
  smtpAuthFailureLimit: 5,
  smtpAuthFailureWindow: 300,
  /** smtpd_error_sleep_time: pause before answering a failed AUTH. */
  smtpAuthFailureDelay: 1,
  /** ETRNs per domain per node (SMTP and relayed ones alike) in etrnDomainRateTime. */
  etrnDomainRateLimit: 6,
  etrnDomainRateTime: 60,
  /** A node that got a relayed ETRN for a domain this recently does not fan out for it. */
  etrnRelayedWindow: 10,
  smtpTlsSecurityLevel: 'may' as TlsSecurityLevel,
};

function nonNegative(text: string, what: string, fail: (m: string) => never): number {
  if (!/^\d+(\.\d+)?$/.test(text)) fail(`${what} must be a number >= 0, got ${JSON.stringify(text)}`);
  return Number(text);
}

function level(text: string, fail: (m: string) => never): TlsSecurityLevel {
  const l = text.toLowerCase() as TlsSecurityLevel;
  if (!TLS_LEVELS.includes(l)) fail(`TLS security level must be one of ${TLS_LEVELS.join(', ')}, got ${JSON.stringify(text)}`);
  return l;
}

/** Handles one PARAM if it is ours; false for a name we do not know. */
export function parseSecurityParam(name: string, args: string[], p: SecurityParams, line: number, fail: (m: string) => never): boolean {
  const one = (usage: string): string => {
    if (args.length !== 1) fail(`PARAM ${name} takes ${usage}`);
    return args[0];
  };
  const seconds = (key: keyof SecurityParams) => { (p as unknown as Record<string, number>)[key] = nonNegative(one('<seconds>'), name, fail); };
  const count = (key: keyof SecurityParams) => {
    const v = one('<n>');
    if (!/^\d+$/.test(v)) fail(`${name} must be an integer >= 0, got ${JSON.stringify(v)}`);
    (p as unknown as Record<string, number>)[key] = Number(v);
  };
  switch (name) {
    case 'admin-token-sha256': {
      const v = one('<64 hex digits> | @<path>');
      if (v.startsWith('@')) {
        if (v.length < 2) fail('empty @path');
        p.adminTokenSha256 = { file: v.slice(1) };
      } else {
        if (!/^[0-9a-fA-F]{64}$/.test(v)) fail('admin-token-sha256 must be 64 hex digits (the SHA-256 of the token) or @<path>');
        p.adminTokenSha256 = { hex: v.toLowerCase() };
      }
      p.adminTokenLine = line;
      return true;
    }
    case 'smtp-auth-users': p.smtpAuthUsers = one('<path>'); p.smtpAuthUsersLine = line; return true;
    case 'smtp-greet-pause': seconds('smtpGreetPause'); return true;
    case 'smtp-client-connection-rate-limit': count('smtpClientConnectionRateLimit'); return true;
    case 'smtp-client-connection-rate-time': seconds('smtpClientConnectionRateTime'); return true;
    case 'smtp-auth-failure-limit': count('smtpAuthFailureLimit'); return true;
    case 'smtp-auth-failure-window': seconds('smtpAuthFailureWindow'); return true;
    case 'smtp-auth-failure-delay': seconds('smtpAuthFailureDelay'); return true;
    case 'etrn-domain-rate-limit': count('etrnDomainRateLimit'); return true;
    case 'etrn-domain-rate-time': seconds('etrnDomainRateTime'); return true;
    case 'etrn-relayed-window': seconds('etrnRelayedWindow'); return true;
    case 'peer-tls-ca-file': p.peerTlsCaFile = one('<path>'); p.peerTlsLine ??= line; return true;
    case 'peer-tls-cert-file': p.peerTlsCertFile = one('<path>'); p.peerTlsLine ??= line; return true;
    case 'peer-tls-key-file': p.peerTlsKeyFile = one('<path>'); p.peerTlsLine ??= line; return true;
    case 'peer-tls-name': {
      const v = one('<dns name>');
      if (!isHostname(v)) fail(`bad peer-tls-name ${JSON.stringify(v)}`);
      p.peerTlsName = v.toLowerCase().replace(/\.$/, '');
      p.peerTlsLine ??= line;
      return true;
    }
    case 'smtp-tls-security-level': p.smtpTlsSecurityLevel = level(one('may|encrypt|verify|none'), fail); p.smtpTlsLine ??= line; return true;
    case 'smtp-tls-policy': {
      if (args.length !== 2) fail('PARAM smtp-tls-policy takes <domain> <none|may|encrypt|verify>');
      const d = args[0].toLowerCase().replace(/\.$/, '');
      if (!isHostname(d.replace(/^\./, ''))) fail(`bad smtp-tls-policy domain ${JSON.stringify(args[0])}`);
      p.smtpTlsPolicy[d] = level(args[1], fail);
      p.smtpTlsLine ??= line;
      return true;
    }
    case 'smtp-tls-ca-file': p.smtpTlsCaFile = one('<path>'); p.smtpTlsLine ??= line; return true;
    case 'mta-sts': {
      const v = one('on|off').toLowerCase();
      if (v !== 'on' && v !== 'off') fail(`PARAM mta-sts takes on or off, got ${JSON.stringify(v)}`);
      p.mtaSts = v === 'on';
      return true;
    }
    default:
      return false;
  }
}

/** Checks that belong to the file as a whole (pairs that must be set together). */
export function checkSecurityParams(p: SecurityParams, fail: (line: number, m: string) => never): void {
  const peer = [p.peerTlsCaFile, p.peerTlsCertFile, p.peerTlsKeyFile, p.peerTlsName];
  if (peer.some((x) => x !== undefined) && peer.some((x) => x === undefined)) {
    fail(p.peerTlsLine ?? 0, 'peer-tls-ca-file, peer-tls-cert-file, peer-tls-key-file and peer-tls-name must be set together');
  }
}

/**
 * The TLS level for a delivery to `domain` (Postfix smtp_tls_policy_maps lookup order: the
 * domain itself, then `.parent` entries for its subdomains, then the default).
 */
export function tlsLevelFor(domain: string, policy: Readonly<Record<string, TlsSecurityLevel>>, fallback: TlsSecurityLevel): TlsSecurityLevel {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (policy[d]) return policy[d];
  const labels = d.split('.');
  for (let i = 1; i < labels.length; i++) {
    const parent = '.' + labels.slice(i).join('.');
    if (policy[parent]) return policy[parent];
  }
  return fallback;
}

/** One line of the smtp-auth-users file: `user:<PHC scrypt string>:RELAY`. */
export interface SmtpAuthUser { user: string; phc: string; relay: boolean }

/** Parses the smtp-auth-users file (BRIEF contract 3); errors name the file and line. */
export function parseSmtpAuthUsers(text: string, fail: (line: number, m: string) => never): SmtpAuthUser[] {
  const out: SmtpAuthUser[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(':');
    if (parts.length !== 3) fail(i + 1, 'expected user:<$scrypt$ln=..,r=..,p=..$salt$hash>:RELAY');
    const [user, phc, rights] = parts;
    if (user === '') fail(i + 1, 'empty user');
    if (!/^\$scrypt\$ln=\d{1,2},r=\d{1,3},p=\d{1,3}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/.test(phc)) {
      fail(i + 1, `user ${user}: password must be a PHC scrypt string ($scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>); make one with \`mailcluster auth-hash\``);
    }
    const r = rights.split(/[\s,]+/).filter((x) => x !== '').map((x) => x.toUpperCase());
    out.push({ user, phc, relay: r.includes('RELAY') });
  });
  return out;
}

/** The resolved settings the node runs with (NodeConfig.security). Times in seconds. */
export interface SecurityConfig {
  /** Lower-case hex SHA-256 of the admin token; null: protected admin endpoints answer 403. */
  adminTokenSha256: string | null;
  /** null: SMTP AUTH is off (not offered, AUTH refused). */
  smtpAuthUsers: SmtpAuthUser[] | null;
  smtpGreetPause: number;
  smtpClientConnectionRateLimit: number;
  smtpClientConnectionRateTime: number;
  smtpAuthFailureLimit: number;
  smtpAuthFailureWindow: number;
  smtpAuthFailureDelay: number;
  etrnDomainRateLimit: number;
  etrnDomainRateTime: number;
  etrnRelayedWindow: number;
  /** PEM texts (strings, so reloads compare by value). */
  peerTls: { ca: string; cert: string; key: string; name: string; files: string[] } | null;
  smtpTlsSecurityLevel: TlsSecurityLevel;
  smtpTlsPolicy: Record<string, TlsSecurityLevel>;
  /** PEM of the CA bundle for `verify`; null: Node's built-in roots. */
  smtpTlsCa: string | null;
  /** MTA-STS (RFC 8461) for outbound delivery. */
  mtaSts: boolean;
}
