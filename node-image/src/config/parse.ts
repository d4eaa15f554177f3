// Pure parsers for the three config files. Each error names the file and line.
import net from 'node:net';
import { formatCidr, parseCidr } from '../net/cidr.ts';
import { ConfigError } from './types.ts';
import type { BindAddress, SchedulerAuthEntry } from './types.ts';

export interface EtrnPeerLine {
  host: string;
  port: number;
  user: string;
  /** Literal password, or `@path` to read it from (resolved by the loader). */
  password: string;
  passwordFile?: string;
  line: number;
}

/** What smtpserver.conf says; unset scalars take the defaults in load.ts. */
export interface SmtpserverSettings {
  hostname?: string;
  bindSmtp?: BindAddress;
  bindMailq?: BindAddress;
  bindAdmin?: BindAddress;
  maxSize?: number;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Line of the tls-*-file PARAM, for errors about the pair. */
  tlsLine?: number;
  etrnCluster: EtrnPeerLine[];
  relayDomains: string[];
  relayNetworks: string[];
  proxyProtocol: string[];
  dnsServers: string[];
  smtpPort?: number;
  retryInterval?: number;
  maxRetryInterval?: number;
  queueLifetime?: number;
  maxReceivedHeaders?: number;
  maxRecipients?: number;
  maxConnections?: number;
  deliveryConcurrency?: number;
  /** `PARAM admin-token-sha256 <64 hex> | @<path>` (contract 1): the hex digest, or the file holding it. */
  adminTokenSha256?: { digest?: string; file?: string; line: number };
}

const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

export function isHostname(s: string): boolean {
  return HOSTNAME_RE.test(s);
}

/** Splits a line into words, honouring "double quotes" for words with spaces. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

function stripComment(line: string): string {
  // `#` starts a comment at the line start or after whitespace (so `a#b` stays a word)
  const m = /(^|\s)#/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

function parsePort(text: string | undefined, fail: (msg: string) => never): number {
  if (text === undefined || !/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) fail(`bad port ${JSON.stringify(text ?? '')}`);
  return Number(text);
}

function parseBindAddress(text: string, fail: (msg: string) => never): string {
  if (text === '*') return '0.0.0.0';
  const m = /^\[(?:IPv6:)?(.*)\]$/i.exec(text);
  const a = m ? m[1] : text;
  if (net.isIP(a) === 0) fail(`bad listen address ${JSON.stringify(text)} (an IP address, 0.0.0.0 or ::)`);
  return a;
}

function positiveNumber(text: string | undefined, what: string, fail: (msg: string) => never, integer = true): number {
  const re = integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (text === undefined || !re.test(text) || Number(text) <= 0) fail(`${what} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(text ?? '')}`);
  return Number(text);
}

/** `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port` as node:dns setServers accepts them. */
export function parseDnsServer(text: string): string {
  let m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d{1,5}))?$/.exec(text);
  if (m && net.isIPv4(m[1]) && (!m[2] || (Number(m[2]) > 0 && Number(m[2]) < 65536))) return text;
  m = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(text);
  if (m && net.isIPv6(m[1]) && (!m[2] || (Number(m[2]) > 0 && Number(m[2]) < 65536))) return text;
  if (net.isIPv6(text)) return text;
  throw new Error(`bad dns-server ${JSON.stringify(text)} (ip[:port])`);
}

/** `host[/port]` of an etrn-cluster line; host may be `[ipv6]`. */
function parsePeerNode(text: string, fail: (msg: string) => never): { host: string; port: number } {
  let host = text;
  let port = 174;
  const slash = text.lastIndexOf('/');
  if (slash >= 0) {
    host = text.slice(0, slash);
    port = parsePort(text.slice(slash + 1), fail);
  }
  const m = /^\[(?:IPv6:)?(.*)\]$/i.exec(host);
  if (m) host = m[1];
  if (!net.isIP(host) && !isHostname(host)) fail(`bad etrn-cluster node ${JSON.stringify(text)}`);
  return { host, port };
}

export function normalizeDomain(d: string): string {
  return d.toLowerCase().replace(/\.$/, '');
}

export function parseSmtpserverConf(text: string, file: string): SmtpserverSettings {
  const s: SmtpserverSettings = { etrnCluster: [], relayDomains: [], relayNetworks: [], proxyProtocol: [], dnsServers: [] };
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const fail = (msg: string): never => { throw new ConfigError(file, lineNo, msg); };
    const w = words(stripComment(raw));
    if (w.length === 0) return;
    if (w[0].toUpperCase() !== 'PARAM') fail(`expected "PARAM <name> <args>", got ${JSON.stringify(raw.trim())}`);
    if (w.length < 2) fail('PARAM without a name');
    const name = w[1].toLowerCase();
    const args = w.slice(2);
    const need = (n: number, usage: string) => {
      if (args.length < n) fail(`PARAM ${w[1]} needs ${usage}`);
      if (args.length > n && !usage.includes('[')) fail(`PARAM ${w[1]} takes ${usage}, got extra ${JSON.stringify(args.slice(n).join(' '))}`);
    };
    const bind = (usage: string): BindAddress | undefined => {
      if (args.length < 1 || args.length > 2) fail(`PARAM ${w[1]} takes ${usage}`);
      return { address: parseBindAddress(args[0], fail), port: args[1] === undefined ? NaN : parsePort(args[1], fail) };
    };
    switch (name) {
      case 'hostname':
        need(1, '<fqdn>');
        if (!isHostname(args[0])) fail(`bad hostname ${JSON.stringify(args[0])}`);
        s.hostname = args[0].replace(/\.$/, '');
        break;
      case 'bindsmtp': s.bindSmtp = bind('<address> [port]'); break;
      case 'bindmailq': s.bindMailq = bind('<address> [port]'); break;
      case 'bindadmin': s.bindAdmin = bind('<address> [port]'); break;
      case 'maxsize':
        need(1, '<bytes>');
        s.maxSize = positiveNumber(args[0], 'maxsize', fail);
        break;
      case 'tls-cert-file': need(1, '<path>'); s.tlsCertFile = args[0]; s.tlsLine ??= lineNo; break;
      case 'tls-key-file': need(1, '<path>'); s.tlsKeyFile = args[0]; s.tlsLine ??= lineNo; break;
      case 'etrn-cluster': {
        need(3, '<node[/port]> <user> <password>');
        const { host, port } = parsePeerNode(args[0], fail);
        const pw = args[2];
        const peer: EtrnPeerLine = { host, port, user: args[1], password: pw, line: lineNo };
        if (pw.startsWith('@')) {
          if (pw.length < 2) fail('empty @path password');
          peer.passwordFile = pw.slice(1);
          peer.password = '';
        }
        s.etrnCluster.push(peer);
        break;
      }
      case 'relay-domain':
        if (args.length < 1) fail('PARAM relay-domain needs <domain>');
        for (const d of args) {
          const dd = d.replace(/^\./, '');
          if (!isHostname(dd)) fail(`bad relay-domain ${JSON.stringify(d)}`);
          s.relayDomains.push(normalizeDomain(dd));
        }
        break;
      case 'relay-network':
      case 'proxy-protocol':
        if (args.length < 1) fail(`PARAM ${w[1]} needs <cidr>`);
        for (const a of args) {
          let c: string;
          try { c = formatCidr(parseCidr(a)); } catch (err) { fail((err as Error).message); }
          (name === 'relay-network' ? s.relayNetworks : s.proxyProtocol).push(c!);
        }
        break;
      case 'dns-server':
        if (args.length < 1) fail('PARAM dns-server needs <ip[:port]>');
        for (const a of args) {
          try { s.dnsServers.push(parseDnsServer(a)); } catch (err) { fail((err as Error).message); }
        }
        break;
      case 'smtp-port': need(1, '<port>'); s.smtpPort = parsePort(args[0], fail); break;
      case 'retry-interval': need(1, '<seconds>'); s.retryInterval = positiveNumber(args[0], 'retry-interval', fail, false); break;
      case 'max-retry-interval': need(1, '<seconds>'); s.maxRetryInterval = positiveNumber(args[0], 'max-retry-interval', fail, false); break;
      case 'queue-lifetime': need(1, '<seconds>'); s.queueLifetime = positiveNumber(args[0], 'queue-lifetime', fail, false); break;
      case 'max-received-headers': need(1, '<n>'); s.maxReceivedHeaders = positiveNumber(args[0], 'max-received-headers', fail); break;
      case 'max-recipients': need(1, '<n>'); s.maxRecipients = positiveNumber(args[0], 'max-recipients', fail); break;
      case 'max-connections': need(1, '<n>'); s.maxConnections = positiveNumber(args[0], 'max-connections', fail); break;
      case 'delivery-concurrency': need(1, '<n>'); s.deliveryConcurrency = positiveNumber(args[0], 'delivery-concurrency', fail); break;
      case 'admin-token-sha256': {
        need(1, '<64 hex digits> | @<path>');
        if (args[0].startsWith('@')) {
          if (args[0].length < 2) fail('admin-token-sha256: empty @path');
          s.adminTokenSha256 = { file: args[0].slice(1), line: lineNo };
        } else {
          if (!/^[0-9a-fA-F]{64}$/.test(args[0])) fail('admin-token-sha256 must be 64 hex digits (the SHA-256 of the token) or @<path>');
          s.adminTokenSha256 = { digest: args[0].toLowerCase(), line: lineNo };
        }
        break;
      }
      default:
        fail(`unknown PARAM ${JSON.stringify(w[1])}`);
    }
  });
  if ((s.tlsCertFile === undefined) !== (s.tlsKeyFile === undefined)) {
    throw new ConfigError(file, s.tlsLine ?? 0, 'tls-cert-file and tls-key-file must be set together');
  }
  return s;
}

export interface ZmailerSettings {
  selfAddresses: string[];
  postOffice?: string;
  /** Every KEY=value, for keys we do not use (ZMailer's zmailer.conf has many). */
  values: Record<string, string>;
}

/** Validates one SELFADDRESSES entry: IP, `[IP]`, `[IPv6:…]` or a host name. */
export function isSelfAddressEntry(e: string): boolean {
  const m = /^\[(IPv6:)?(.*)\]$/i.exec(e);
  if (m) return m[1] ? net.isIPv6(m[2]) : net.isIP(m[2]) !== 0;
  return net.isIP(e) !== 0 || isHostname(e);
}

export function parseZmailerConf(text: string, file: string): ZmailerSettings {
  const z: ZmailerSettings = { selfAddresses: [], values: {} };
  text.split(/\r?\n/).forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new ConfigError(file, lineNo, `expected KEY=value, got ${JSON.stringify(line)}`);
    let value = m[2].trim();
    const q = /^"(.*)"$|^'(.*)'$/.exec(value);
    if (q) value = q[1] ?? q[2];
    z.values[m[1]] = value;
    if (m[1] === 'SELFADDRESSES') {
      const entries = value.split(/[\s,]+/).filter((e) => e !== '');
      for (const e of entries) {
        if (!isSelfAddressEntry(e)) throw new ConfigError(file, lineNo, `bad SELFADDRESSES entry ${JSON.stringify(e)}`);
      }
      z.selfAddresses = entries;
    } else if (m[1] === 'POSTOFFICE') {
      if (!value.startsWith('/')) throw new ConfigError(file, lineNo, `POSTOFFICE must be an absolute path, got ${JSON.stringify(value)}`);
      z.postOffice = value;
    }
  });
  return z;
}

export function parseSchedulerAuth(text: string, file: string): SchedulerAuthEntry[] {
  const out: SchedulerAuthEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    // user:password:ATTRS:IP-ACLs; the ACL field may itself hold colons (IPv6)
    const m = /^([^:]*):([^:]*):([^:]*):(.*)$/.exec(line);
    if (!m) throw new ConfigError(file, lineNo, 'expected user:password:ATTRS:IP-ACLs');
    const [, user, password, attrs, aclText] = m;
    if (user === '') throw new ConfigError(file, lineNo, 'empty user');
    const rights = attrs.split(/[\s,]+/).filter((r) => r !== '').map((r) => r.toUpperCase());
    const acls: string[] = [];
    for (const a of aclText.split(/[\s,]+/).filter((x) => x !== '')) {
      try { acls.push(formatCidr(parseCidr(a))); } catch (err) {
        throw new ConfigError(file, lineNo, `bad IP ACL: ${(err as Error).message}`);
      }
    }
    out.push({ user, password, rights, acls });
  });
  return out;
}
