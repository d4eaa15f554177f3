import assert from 'node:assert/strict';
import {
  MAILQ_AUTH_OK, MAILQ_BAD_PASSWORD, MAILQ_BAD_USER, MAILQ_BYE, MAILQ_MUST_AUTHENTICATE, MAILQ_NO_ETRN_RIGHT,
  MailqSession, mailqAuthenticator, makeChallenge, splitCommand,
} from '../../../node-image/src/mailq/protocol.ts';

const CHALLENGE = '220 MAILQ-V2-CHALLENGE: 1795950318.9300.1';
const users = [
  { user: 'etrn', password: 's3cret', rights: ['ETRN'], acls: ['[127.0.0.0]/8'] },
  { user: 'viewer', password: 'look', rights: ['QQ'], acls: [] },
];

describe('MAILQv2 protocol (ZMailer scheduler)', () => {
  it('makes the challenge line as the scheduler does: seconds.microseconds.counter', () => {
    assert.equal(makeChallenge(1795950318_009300n, 1), CHALLENGE);
  });

  it('authenticates with the hex MD5 of the whole challenge line followed by the password', () => {
    // printf '%s' '220 MAILQ-V2-CHALLENGE: 1795950318.9300.1s3cret' | md5sum
    assert.equal(mailqAuthenticator(CHALLENGE, 's3cret'), 'd138420e2236eec175785fad59f73d16');
  });

  it('splits a verb from the rest on spaces or tabs', () => {
    assert.deepEqual(splitCommand('ETRN \t customer.example [1.2.3.4]@h'), { verb: 'ETRN', rest: 'customer.example [1.2.3.4]@h' });
    assert.deepEqual(splitCommand('QUIT'), { verb: 'QUIT', rest: '' });
  });

  it('refuses every command before AUTH', () => {
    const s = new MailqSession(CHALLENGE, '127.0.0.1');
    const step = s.handleLine('ETRN customer.example', users);
    assert.deepEqual(step.kind === 'reply' && step.line, MAILQ_MUST_AUTHENTICATE);
  });

  it('refuses a wrong password, an unknown user and an address outside the ACL, each logged', () => {
    const s = new MailqSession(CHALLENGE, '127.0.0.1');
    const wrong = s.handleLine('AUTH etrn 00000000000000000000000000000000', users);
    assert.ok(wrong.kind === 'reply' && wrong.line === MAILQ_BAD_PASSWORD && wrong.event?.reason === 'wrong password');
    const unknown = s.handleLine(`AUTH nobody ${mailqAuthenticator(CHALLENGE, 's3cret')}`, users);
    assert.ok(unknown.kind === 'reply' && unknown.line === MAILQ_BAD_USER && unknown.event?.reason === 'unknown user');
    const outside = new MailqSession(CHALLENGE, '192.0.2.9').handleLine(`AUTH etrn ${mailqAuthenticator(CHALLENGE, 's3cret')}`, users);
    assert.ok(outside.kind === 'reply' && outside.line === MAILQ_BAD_USER && /outside the user's IP ACL/.test(outside.event?.reason ?? ''));
    assert.equal(s.user, undefined);
  });

  it('after AUTH, hands ETRN <domain> [<client-ip>]@<hostname> to the node', () => {
    const s = new MailqSession(CHALLENGE, '127.0.0.1');
    const ok = s.handleLine(`AUTH etrn ${mailqAuthenticator(CHALLENGE, 's3cret')}\r`, users);
    assert.ok(ok.kind === 'reply' && ok.line === MAILQ_AUTH_OK);
    assert.deepEqual(s.handleLine('ETRN customer.example [192.0.2.7]@mx1.isp.example', users), {
      kind: 'etrn', argument: 'customer.example', origin: '[192.0.2.7]@mx1.isp.example', user: 'etrn',
    });
    const unknown = s.handleLine('SHOW QUEUE SHORT', users);
    assert.ok(unknown.kind === 'reply' && unknown.line === "-MAILQ2 Unknown command, or refused by access control; VERB='SHOW' REST='QUEUE SHORT'");
  });

  it('refuses ETRN to a user without the ETRN right', () => {
    const s = new MailqSession(CHALLENGE, '127.0.0.1');
    s.handleLine(`AUTH viewer ${mailqAuthenticator(CHALLENGE, 'look')}`, users);
    const step = s.handleLine('ETRN customer.example', users);
    assert.ok(step.kind === 'reply' && step.line === MAILQ_NO_ETRN_RIGHT && step.event?.outcome === 'refused');
  });

  it('says goodbye to QUIT at any time', () => {
    assert.deepEqual(new MailqSession(CHALLENGE, '127.0.0.1').handleLine('quit', users), { kind: 'reply', line: MAILQ_BYE, close: true });
  });
});
