// Shaping of ETRN replies: RFC 1985 codes for a lone node, ZMailer's multi-line shape for
// a cluster, and the MAILQv2 reply lines. Pure functions.
import { formatEtrnTarget } from './parse.ts';
import type { EtrnRefusal, EtrnTarget } from './parse.ts';

/** What a local flush reports: messages it started delivering, and those already in delivery. */
export interface FlushResult {
  started: number;
  inFlight?: number;
}

/** An SMTP reply: one code, one or more texts (each text begins with its enhanced status code). */
export interface SmtpReply {
  code: number;
  lines: string[];
}

/**
 * RFC 1985 reply of a node without etrn-cluster peers:
 * 253 when messages were started (with their count), 252 when nothing new was started but
 * some are being delivered already, 251 when nothing waits for that node.
 */
export function localEtrnReply(target: EtrnTarget, result: FlushResult): SmtpReply {
  const node = formatEtrnTarget(target);
  if (result.started > 0) {
    return { code: 253, lines: [`2.0.0 OK, ${result.started} pending messages for node ${node} started`] };
  }
  if ((result.inFlight ?? 0) > 0) {
    return { code: 252, lines: [`2.0.0 OK, pending messages for node ${node} started`] };
  }
  return { code: 251, lines: [`2.0.0 OK, no messages waiting for node ${node}`] };
}

/** 458: the flush could not be started (for example the queue is unavailable or draining). */
export function cannotQueueReply(target: EtrnTarget, reason: string): SmtpReply {
  return { code: 458, lines: [`4.3.0 Unable to queue messages for node ${formatEtrnTarget(target)}: ${reason}`] };
}

export function refusalReply(refusal: EtrnRefusal): SmtpReply {
  return { code: refusal.code, lines: [`${refusal.enhanced} ${refusal.message}`] };
}

/** One cluster node's part of a cluster ETRN: its name as configured and its one-line outcome. */
export interface NodeOutcome {
  node: string;
  line: string;
}

/**
 * ZMailer's cluster reply, in configuration order:
 *   250-2.0.0 Attempting ETRN on cluster node: <node>
 *   250-2.0.0 <that node's reply line>
 *   ...
 *   250 2.0.0 ETRN-cluster operation(s) complete
 */
export function clusterEtrnReply(outcomes: readonly NodeOutcome[]): SmtpReply {
  const lines: string[] = [];
  for (const o of outcomes) {
    lines.push(`2.0.0 Attempting ETRN on cluster node: ${o.node}`);
    lines.push(`2.0.0 ${sanitizeLine(o.line)}`);
  }
  lines.push('2.0.0 ETRN-cluster operation(s) complete');
  return { code: 250, lines };
}

/** The MAILQv2 reply to ETRN, as ZMailer's scheduler words it. */
export function mailqEtrnReplyLine(startedSomething: boolean): string {
  return startedSomething ? '+OK; an ETRN started something.' : "+OK; an ETRN didn't start anything.";
}

/** SMTP wire form (CRLF between lines, none at the end), for tests and raw writers. */
export function renderSmtpReply(reply: SmtpReply): string {
  return reply.lines
    .map((text, i) => `${reply.code}${i < reply.lines.length - 1 ? '-' : ' '}${text}`)
    .join('\r\n');
}

/** A peer's line goes into our reply: no control characters may split it, and keep it short. */
export function sanitizeLine(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 400);
}
