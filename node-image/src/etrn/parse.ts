// ETRN argument parsing (RFC 1985), and the relay-domain check. Pure functions.
//
//   ETRN customer.example      that domain only
//   ETRN @customer.example     that domain and every subdomain of it
//   ETRN #queue                a named queue: not supported, refused clearly

/** What an ETRN asks to be flushed. `domain` is lower-cased, without a trailing dot. */
export interface EtrnTarget {
  domain: string;
  subdomains: boolean;
}

/** A refusal: the SMTP code, its enhanced status code and the text. */
export interface EtrnRefusal {
  code: number;
  enhanced: string;
  message: string;
}

export type EtrnParseResult = { ok: true; target: EtrnTarget } | { ok: false; refusal: EtrnRefusal };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** True for a syntactically valid DNS domain name (letters, digits, hyphens; 1..253 chars). */
export function isDomainName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => LABEL.test(label));
}

/**
 * Parses the argument text of an ETRN command (what follows `ETRN `).
 * Errors: 501 for a missing or malformed argument, 458 for a named queue (`#queue`),
 * which this server does not keep (it has one queue, sorted by domain).
 */
export function parseEtrnArgument(args: string): EtrnParseResult {
  const words = args.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) {
    return refuse(501, '5.5.4', 'Syntax: ETRN <domain> or ETRN @<domain>');
  }
  if (words.length > 1) {
    return refuse(501, '5.5.4', 'Syntax: ETRN takes exactly one argument: <domain> or @<domain>');
  }
  let word = words[0];
  if (word.startsWith('#')) {
    return refuse(458, '4.5.1', `Named queues (${word}) are not supported; use ETRN <domain> or ETRN @<domain>`);
  }
  let subdomains = false;
  if (word.startsWith('@')) {
    subdomains = true;
    word = word.slice(1);
  }
  const domain = word.toLowerCase().replace(/\.$/, '');
  if (!isDomainName(domain)) {
    return refuse(501, '5.5.4', `Syntax error in ETRN parameter: ${JSON.stringify(words[0])} is not a domain name`);
  }
  return { ok: true, target: { domain, subdomains } };
}

/** The argument as it goes on the wire (`domain` or `@domain`). */
export function formatEtrnTarget(target: EtrnTarget): string {
  return (target.subdomains ? '@' : '') + target.domain;
}

/** True when `domain` equals `parent` or lies below it. */
export function isSameOrSubdomain(domain: string, parent: string): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const p = parent.toLowerCase().replace(/^\./, '').replace(/\.$/, '');
  return d === p || d.endsWith('.' + p);
}

/**
 * An ETRN is allowed for a relay domain or a subdomain of one (`relay-domain` makes the
 * cluster MX for that domain; its subdomains are ours as well). For `@domain` the domain
 * itself must be ours: anything below it is then ours too.
 */
export function isEtrnAllowed(target: EtrnTarget, relayDomains: readonly string[]): boolean {
  return relayDomains.some((relay) => isSameOrSubdomain(target.domain, relay));
}

/** The 459 refusal for a domain that is not one of ours. */
export function notOurDomain(target: EtrnTarget): EtrnRefusal {
  return {
    code: 459,
    enhanced: '4.7.1',
    message: `Node ${formatEtrnTarget(target)} not allowed: not a relay domain of this cluster`,
  };
}

/** The 503 refusal inside a mail transaction (between MAIL and the end of DATA). */
export const ETRN_IN_TRANSACTION: EtrnRefusal = {
  code: 503,
  enhanced: '5.5.1',
  message: 'ETRN not allowed inside a mail transaction; send RSET first',
};

function refuse(code: number, enhanced: string, message: string): EtrnParseResult {
  return { ok: false, refusal: { code, enhanced, message } };
}
