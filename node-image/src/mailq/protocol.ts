// MAILQv2, ZMailer's scheduler protocol, as its scheduler speaks it: the wire strings, the
// challenge/response authenticator and the per-connection state machine. No I/O here: the
// server feeds lines in and writes what comes out.
//
//   S: version zmailer 2.0
//   S: 220 MAILQ-V2-CHALLENGE: 1795950318.9300.1
//   C: AUTH etrn 5d41402abc4b2a76b9719d911017c592     (hex MD5 of challenge line + password)
//   S: +OK
//   C: ETRN customer.example [192.0.2.7]@mx1.isp.example
//   S: +OK; an ETRN started something.
//   C: QUIT
//   S: +Bye bye
import { createHash } from 'node:crypto';
import { findUser, hasRight } from './auth.ts';
import type { SchedulerAuthUser } from './auth.ts';

export const MAILQ_GREETING = 'version zmailer 2.0';
export const MAILQ_AUTH_OK = '+OK';
export const MAILQ_BAD_PASSWORD = '-BAD USER OR PASSWORD';
export const MAILQ_BAD_USER = '-BAD USER OR AUTHENTICATOR OR CONTACT ADDRESS';
export const MAILQ_MUST_AUTHENTICATE = '-BAD; USER MUST AUTHENTICATE';
export const MAILQ_NO_ETRN_RIGHT = '-No ETRN allowed for you.';
export const MAILQ_BYE = '+Bye bye';

/** The challenge line: seconds, microseconds and a per-process counter, so it never repeats. */
export function makeChallenge(nowMicros: bigint, counter: number): string {
  const sec = nowMicros / 1_000_000n;
  const usec = nowMicros % 1_000_000n;
  return `220 MAILQ-V2-CHALLENGE: ${sec}.${usec}.${counter}`;
}

/** Lower-case hex MD5 of the whole challenge line (without its LF) followed by the password. */
export function mailqAuthenticator(challenge: string, password: string): string {
  return createHash('md5').update(challenge, 'latin1').update(password, 'utf8').digest('hex');
}

/** Splits a command line into its verb and the rest, as the scheduler does (space or tab). */
export function splitCommand(line: string): { verb: string; rest: string } {
  const m = /^([^ \t]*)[ \t]*(.*)$/s.exec(line) as RegExpExecArray;
  return { verb: m[1], rest: m[2] };
}

/** `ETRN <argument> [<client-ip>]@<hostname>`: the argument and who asked (free text, for the log). */
export function parseMailqEtrn(rest: string): { argument: string; origin: string } {
  const { verb, rest: origin } = splitCommand(rest);
  return { argument: verb, origin };
}

/** What a connection must do after a line. */
export type MailqStep =
  | { kind: 'reply'; line: string; close?: boolean; event?: MailqEvent }
  | { kind: 'etrn'; argument: string; origin: string; user: string };

/** Things worth a log line: who authenticated, who was refused and why. */
export interface MailqEvent {
  outcome: 'authenticated' | 'refused';
  user?: string;
  reason?: string;
}

export class MailqSession {
  readonly challenge: string;
  readonly clientIp: string;
  #user: SchedulerAuthUser | undefined;

  constructor(challenge: string, clientIp: string) {
    this.challenge = challenge;
    this.clientIp = clientIp;
  }

  get user(): string | undefined {
    return this.#user?.user;
  }

  /** One input line (without LF; a CR is dropped) against the current user list. */
  handleLine(rawLine: string, users: readonly SchedulerAuthUser[]): MailqStep {
    const { verb, rest } = splitCommand(rawLine.replace(/\r/g, ''));
    const upper = verb.toUpperCase();
    if (upper === 'QUIT' || upper === 'EXIT') return { kind: 'reply', line: MAILQ_BYE, close: true };
    if (!this.#user && verb === 'AUTH') return this.#auth(rest, users);
    if (!this.#user) {
      return { kind: 'reply', line: MAILQ_MUST_AUTHENTICATE, event: { outcome: 'refused', reason: `${verb} before AUTH` } };
    }
    if (verb === 'ETRN') {
      if (!hasRight(this.#user, 'ETRN')) {
        return { kind: 'reply', line: MAILQ_NO_ETRN_RIGHT, event: { outcome: 'refused', user: this.#user.user, reason: 'no ETRN right' } };
      }
      const { argument, origin } = parseMailqEtrn(rest);
      return { kind: 'etrn', argument, origin, user: this.#user.user };
    }
    return {
      kind: 'reply',
      line: `-MAILQ2 Unknown command, or refused by access control; VERB='${printable(verb)}' REST='${printable(rest)}'`,
    };
  }

  #auth(rest: string, users: readonly SchedulerAuthUser[]): MailqStep {
    const { verb: name, rest: given } = splitCommand(rest);
    const entry = findUser(users, name, this.clientIp);
    if (!entry) {
      const known = users.some((u) => u.user === name);
      const reason = known ? `address ${this.clientIp} outside the user's IP ACL` : 'unknown user';
      return { kind: 'reply', line: MAILQ_BAD_USER, event: { outcome: 'refused', user: name, reason } };
    }
    if (given.trim().toLowerCase() !== mailqAuthenticator(this.challenge, entry.password)) {
      return { kind: 'reply', line: MAILQ_BAD_PASSWORD, event: { outcome: 'refused', user: name, reason: 'wrong password' } };
    }
    this.#user = entry;
    return { kind: 'reply', line: MAILQ_AUTH_OK, event: { outcome: 'authenticated', user: name } };
  }
}

// echoed text must stay on one line and short
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 200);
}
