// Outbound TLS per destination, after Postfix's smtp_tls_security_level (pure):
//   none    - no STARTTLS;
//   may     - STARTTLS when offered, certificate not verified, plaintext when the handshake
//             fails (opportunistic: an unverifiable certificate still beats plain text);
//   encrypt - STARTTLS required, the chain verified against the CA (smtp-tls-ca-file or the
//             system roots), the name not matched. (Postfix's encrypt skips verification; we
//             never connect with rejectUnauthorized:false outside `may`.)
//   verify  - STARTTLS required, the chain verified and the name matched (the MX host name,
//             as Postfix's smtp_tls_verify_cert_match = hostname).
import { isIP } from 'node:net';
import { tlsLevelFor } from '../config/security.ts';
import type { TlsSecurityLevel } from '../config/security.ts';

export interface OutboundTlsSettings {
  defaultLevel: TlsSecurityLevel;
  /** Per-domain overrides (`PARAM smtp-tls-policy`); `.example` covers subdomains. */
  policy: Record<string, TlsSecurityLevel>;
  /** PEM CA bundle for encrypt/verify; undefined: Node's built-in roots. */
  ca?: string;
}

/** The nodemailer SMTPConnection options for a level. */
export interface TlsConnectionOptions {
  ignoreTLS?: boolean;
  requireTLS?: boolean;
  opportunisticTLS?: boolean;
  tls: { rejectUnauthorized: boolean; servername?: string; ca?: string; checkServerIdentity?: () => undefined; minVersion?: 'TLSv1.2' };
}

export function levelForDomain(domain: string | undefined, s: OutboundTlsSettings | undefined): TlsSecurityLevel {
  if (!s) return 'may';
  return domain ? tlsLevelFor(domain, s.policy, s.defaultLevel) : s.defaultLevel;
}

export function tlsConnectionOptions(level: TlsSecurityLevel, servername: string, ca?: string): TlsConnectionOptions {
  const name = servername && !isIP(servername) ? servername.replace(/\.$/, '') : undefined;
  switch (level) {
    case 'none':
      return { ignoreTLS: true, tls: { rejectUnauthorized: true } };
    case 'may':
      return { opportunisticTLS: true, tls: { rejectUnauthorized: false, servername: name } };
    case 'encrypt':
      return { requireTLS: true, tls: { rejectUnauthorized: true, servername: name, ca, checkServerIdentity: () => undefined, minVersion: 'TLSv1.2' } };
    case 'verify':
      return { requireTLS: true, tls: { rejectUnauthorized: true, servername: name ?? servername, ca, minVersion: 'TLSv1.2' } };
  }
}
