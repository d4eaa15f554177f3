// Delivery status notifications (RFC 3464 multipart/report), pure.
import { randomBytes } from 'node:crypto';

export interface FailedRecipient { address: string; status: string; diagnostic: string; remoteMta?: string }

export interface DsnInput {
  reportingMta: string;
  /** The original envelope sender: the DSN's recipient. */
  to: string;
  originalId: string;
  arrivalDate: Date;
  failed: FailedRecipient[];
  /** The original message's header section (returned as text/rfc822-headers). */
  originalHeaders: string;
  now?: Date;
}

/** The status code a diagnostic reply carries (`550 5.1.1 …` -> 5.1.1), or a default by class. */
export function statusFromDiagnostic(diagnostic: string, permanent: boolean): string {
  const m = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(diagnostic);
  if (m) return m[1];
  return permanent ? '5.0.0' : '4.0.0';
}

/** Header section of a message (up to the first empty line). */
export function headerSection(content: Buffer, limit = 64 * 1024): string {
  const text = content.subarray(0, limit).toString('utf8');
  const m = /\r?\n\r?\n/.exec(text);
  return m ? text.slice(0, m.index) : text;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').slice(0, 900);
}

export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `=_mailcluster_${randomBytes(9).toString('hex')}`;
  const expired = input.failed.some((f) => /queue lifetime/i.test(f.diagnostic));
  const lines = input.failed.map((f) => `  <${f.address}>: ${oneLine(f.diagnostic)}`).join('\r\n');
  const perRecipient = input.failed.map((f) => [
    `Final-Recipient: rfc822; ${f.address}`,
    'Action: failed',
    `Status: ${f.status}`,
    ...(f.remoteMta ? [`Remote-MTA: dns; ${f.remoteMta}`] : []),
    `Diagnostic-Code: smtp; ${oneLine(f.diagnostic)}`,
  ].join('\r\n')).join('\r\n\r\n');
  const text = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.to}>`,
    `Subject: Undelivered Mail Returned to Sender`,
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${input.originalId}.dsn.${Date.now()}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This is the mail system at ${input.reportingMta}.`,
    '',
    expired
      ? 'Your message could not be delivered before its queue lifetime ended:'
      : 'Your message could not be delivered to one or more recipients:',
    '',
    lines,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Mailcluster-Queue-ID: ${input.originalId}`,
    `Arrival-Date: ${input.arrivalDate.toUTCString().replace('GMT', '+0000')}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    input.originalHeaders.replace(/\r?\n/g, '\r\n'),
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
  return Buffer.from(text, 'utf8');
}
