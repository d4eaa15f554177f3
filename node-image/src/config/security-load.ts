// Resolves the issue-10 PARAMs into NodeConfig.security: reads the files they name (admin
// token digest, SMTP AUTH users, peer TLS, CA bundle). Each error names smtpserver.conf's line.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from './types.ts';
import { parseSmtpAuthUsers, securityDefaults } from './security.ts';
import type { SecurityConfig, SecurityParams } from './security.ts';

export function loadSecurity(p: SecurityParams, resolve: (path: string) => string, smtpFile: string, extraFiles: string[]): SecurityConfig {
  const read = (path: string, line: number, what: string): string => {
    const real = resolve(path);
    extraFiles.push(real);
    try {
      return readFileSync(real, 'utf8');
    } catch (err) {
      throw new ConfigError(smtpFile, line, `${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  let adminTokenSha256: string | null = null;
  if (p.adminTokenSha256) {
    const line = p.adminTokenLine ?? 0;
    const hex = 'hex' in p.adminTokenSha256 ? p.adminTokenSha256.hex : read(p.adminTokenSha256.file, line, 'admin-token-sha256 file').trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new ConfigError(smtpFile, line, 'admin-token-sha256 file must hold 64 hex digits (the SHA-256 of the token)');
    adminTokenSha256 = hex;
  }
  let smtpAuthUsers: SecurityConfig['smtpAuthUsers'] = null;
  if (p.smtpAuthUsers !== undefined) {
    const text = read(p.smtpAuthUsers, p.smtpAuthUsersLine ?? 0, 'smtp-auth-users file');
    smtpAuthUsers = parseSmtpAuthUsers(text, (line, m) => { throw new ConfigError(resolve(p.smtpAuthUsers!), line, m); });
  }
  let peerTls: SecurityConfig['peerTls'] = null;
  if (p.peerTlsName !== undefined) {
    const line = p.peerTlsLine ?? 0;
    const ca = read(p.peerTlsCaFile!, line, 'peer-tls-ca-file');
    const cert = read(p.peerTlsCertFile!, line, 'peer-tls-cert-file');
    const key = read(p.peerTlsKeyFile!, line, 'peer-tls-key-file');
    try {
      tls.createSecureContext({ ca, cert, key });
    } catch (err) {
      throw new ConfigError(smtpFile, line, `peer TLS files: ${(err as Error).message}`);
    }
    peerTls = { ca, cert, key, name: p.peerTlsName, files: [p.peerTlsCaFile!, p.peerTlsCertFile!, p.peerTlsKeyFile!].map(resolve) };
  }
  const smtpTlsCa = p.smtpTlsCaFile !== undefined ? read(p.smtpTlsCaFile, p.smtpTlsLine ?? 0, 'smtp-tls-ca-file') : null;
  const d = securityDefaults;
  return {
    adminTokenSha256,
    smtpAuthUsers,
    smtpGreetPause: p.smtpGreetPause ?? d.smtpGreetPause,
    smtpClientConnectionRateLimit: p.smtpClientConnectionRateLimit ?? d.smtpClientConnectionRateLimit,
    smtpClientConnectionRateTime: p.smtpClientConnectionRateTime ?? d.smtpClientConnectionRateTime,
    smtpAuthFailureLimit: p.smtpAuthFailureLimit ?? d.smtpAuthFailureLimit,
    smtpAuthFailureWindow: p.smtpAuthFailureWindow ?? d.smtpAuthFailureWindow,
    smtpAuthFailureDelay: p.smtpAuthFailureDelay ?? d.smtpAuthFailureDelay,
    etrnDomainRateLimit: p.etrnDomainRateLimit ?? d.etrnDomainRateLimit,
    etrnDomainRateTime: p.etrnDomainRateTime ?? d.etrnDomainRateTime,
    etrnRelayedWindow: p.etrnRelayedWindow ?? d.etrnRelayedWindow,
    peerTls,
    smtpTlsSecurityLevel: p.smtpTlsSecurityLevel ?? d.smtpTlsSecurityLevel,
    smtpTlsPolicy: { ...p.smtpTlsPolicy },
    smtpTlsCa,
    mtaSts: p.mtaSts ?? false,
  };
}
