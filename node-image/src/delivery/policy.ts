// Pure delivery policy: backoff, selectors, classifying an SMTP error.

/** Delay before the next attempt after `attempts` failed ones: doubling from `first`, capped at `max` (ms). */
export function backoffMs(attempts: number, firstMs: number, maxMs: number): number {
  const n = Math.max(1, attempts);
  return Math.min(maxMs, firstMs * 2 ** Math.min(n - 1, 30));
}

export interface DomainSelector { domain: string; subdomains: boolean }

/** `domain` itself, and with `subdomains` every name below it (ETRN `@domain`). */
export function domainMatches(domain: string, sel: DomainSelector): boolean {
  const d = domain.toLowerCase();
  const s = sel.domain.toLowerCase().replace(/^@/, '').replace(/\.$/, '');
  if (d === s) return true;
  return sel.subdomains && d.endsWith(`.${s}`);
}

export interface SmtpFailure { permanent: boolean; message: string; tryNextHost: boolean }

/** How a failed send is handled: 5xx replies are final; 4xx and connection problems retry (next MX first). */
export function classifySendError(err: { code?: string; responseCode?: number; response?: string; message?: string }): SmtpFailure {
  const code = err.responseCode;
  const message = (err.response ?? err.message ?? 'unknown error').trim();
  if (code !== undefined && code >= 500 && code < 600) return { permanent: true, message, tryNextHost: false };
  // the destination announced a SIZE smaller than the message: no retry will fit it
  if (err.code === 'EMESSAGE' && code === undefined && /size/i.test(message)) return { permanent: true, message: `552 5.3.4 ${message}`, tryNextHost: false };
  return { permanent: false, message: code ? message : `${err.code ?? 'error'}: ${message}`, tryNextHost: true };
}

/**
 * Whether a message of `size` bytes may start its delivery attempt now: always when nothing
 * is in flight (a message larger than the whole budget goes alone), otherwise only within the
 * budget of content loaded for delivery at once. Bounds the node's memory by bytes, not by
 * the attempt count (20 attempts of 10 MB messages would hold hundreds of MB).
 */
export function fitsContentBudget(inFlight: number, inFlightBytes: number, size: number, budgetBytes: number): boolean {
  return inFlight === 0 || inFlightBytes + size <= budgetBytes;
}

/**
 * What a delivery attempt of a message holds in memory, for the content budget: the whole
 * message when it is sent from memory, at most `streamedBytes` when it is streamed from its
 * blob file (never more than the message itself).
 */
export function deliveryHeldBytes(size: number, blobBacked: boolean, streamedBytes: number): number {
  return blobBacked ? Math.min(size, streamedBytes) : size;
}
