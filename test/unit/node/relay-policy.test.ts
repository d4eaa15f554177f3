// Relay control with Postfix's allow_untrusted_routing = no: examples and properties.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dequote, parseRecipientPath, relayRefusal, relayVerdict } from '../../../node-image/src/smtp/policy.ts';
import type { RelayPolicy } from '../../../node-image/src/smtp/policy.ts';

const policy: RelayPolicy = {
  relayDomains: new Set(['customer.test', 'other.customer.test']),
  isRelayNetwork: (ip) => ip.startsWith('10.'),
  isPeer: (ip) => ip === '192.0.2.7',
};
const OUTSIDER = '203.0.113.9';
const untrusted = (rcpt: string) => relayVerdict(rcpt, OUTSIDER, false, policy);

describe('relay policy: sender-specified routing (Postfix allow_untrusted_routing = no)', () => {
  it('reads paths as Postfix resolves them', () => {
    assert.deepEqual(parseRecipientPath('<@relay.test:victim@customer.test>'), { address: 'victim@customer.test', localPart: 'victim', domain: 'customer.test', literal: false, routed: 'source-route' });
    assert.deepEqual(parseRecipientPath('@a.test,@b.test:victim@customer.test')?.routed, 'source-route');
    assert.equal(parseRecipientPath('victim%foreign.test@customer.test')?.routed, 'percent');
    assert.equal(parseRecipientPath('foreign.test!victim@customer.test')?.routed, 'bang');
    assert.equal(parseRecipientPath('"victim@foreign.test"@customer.test')?.routed, 'at-in-local-part');
    assert.equal(parseRecipientPath('"vic\\tim%x"@customer.test')?.routed, 'percent');
    assert.equal(parseRecipientPath('victim@foreign.test@customer.test')?.routed, 'at-in-local-part');
    assert.equal(parseRecipientPath('"a\\"@b"@customer.test')?.localPart, 'a"@b');
    assert.equal(parseRecipientPath('"john smith"@customer.test')?.routed, undefined);
    assert.equal(parseRecipientPath('User@CUSTOMER.Test.')?.domain, 'customer.test');
    assert.equal(parseRecipientPath('User@CUSTOMER.Test.')?.address, 'User@CUSTOMER.Test');
    assert.equal(parseRecipientPath('u@customer.test..')?.domain, 'customer.test..');
    assert.equal(parseRecipientPath('u@[192.0.2.1]')?.literal, true);
    assert.equal(parseRecipientPath('postmaster'), null);
    assert.equal(parseRecipientPath('@customer.test'), null);
    assert.equal(dequote('"a\\"b"."c"'), 'a"b.c');
  });

  it('the relay-trick battery from an outsider: refused, 554 5.7.1 for routing', () => {
    for (const [rcpt, trick] of [
      ['victim%foreign.test@customer.test', 'percent'],
      ['foreign.test!victim@customer.test', 'bang'],
      ['@customer.test:victim@foreign.test', undefined], // the real destination is foreign: plain relay denial
      ['@foreign.test:victim@customer.test', 'source-route'],
      ['"victim@foreign.test"@customer.test', 'at-in-local-part'],
      ['"victim%foreign.test"@customer.test', 'percent'],
      ['victim%foreign.test@CUSTOMER.TEST.', 'percent'],
    ] as const) {
      const v = untrusted(rcpt);
      assert.equal(v.ok, false, rcpt);
      if (!v.ok) assert.equal(v.routed, trick, rcpt);
      if (!v.ok) assert.equal(relayRefusal(v, rcpt).code, trick ? 554 : 550);
    }
    assert.deepEqual(untrusted('victim@[192.0.2.1]'), { ok: false });
    assert.deepEqual(untrusted('victim@customer.test..'), { ok: false });
    assert.deepEqual(untrusted('victim@sub.customer.test'), { ok: false });
  });

  it('case and one trailing dot do not matter for the relay domain', () => {
    for (const rcpt of ['u@customer.test', 'U@Customer.TEST', 'u@customer.test.', 'u@CUSTOMER.TEST.', '"john smith"@customer.test']) {
      assert.deepEqual(untrusted(rcpt), { ok: true, why: 'relay-domain' }, rcpt);
    }
  });

  it('trusted clients may use routing (as Postfix lets mynetworks and SASL users)', () => {
    assert.deepEqual(relayVerdict('victim%foreign.test@customer.test', '10.1.2.3', false, policy), { ok: true, why: 'relay-network' });
    assert.deepEqual(relayVerdict('a!b@customer.test', OUTSIDER, true, policy), { ok: true, why: 'authenticated' });
    assert.deepEqual(relayVerdict('@x:a@customer.test', '192.0.2.7', false, policy), { ok: true, why: 'peer' });
  });

  // --- properties over random paths ---
  const atom = fc.stringMatching(/^[a-zA-Z0-9._+=-]{1,12}$/).filter((s) => !s.startsWith('.') && !s.endsWith('.') && !s.includes('..'));
  const routingChar = fc.constantFrom('%', '!', '@');
  const domainCase = fc.tuple(fc.constantFrom(...policy.relayDomains), fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }), fc.boolean())
    .map(([d, upper, dot]) => [...d].map((ch, i) => (upper[i] ? ch.toUpperCase() : ch)).join('') + (dot ? '.' : ''));
  const anyIp = fc.oneof(fc.ipV4(), fc.ipV6());

  it('property: an outsider never gets a routed local part through a relay domain', () => {
    fc.assert(fc.property(atom, routingChar, atom, domainCase, fc.boolean(), (a, r, b, domain, quoted) => {
      if (r === '@' && !quoted) return; // an unquoted @ makes a different domain: covered below
      const local = quoted ? `"${a}${r}${b}"` : `${a}${r}${b}`;
      const v = untrusted(`${local}@${domain}`);
      return !v.ok && v.routed !== undefined && relayRefusal(v, '').code === 554;
    }), { numRuns: 500 });
  });

  it('property: an outsider reaches only relay domains, whatever the source route says', () => {
    fc.assert(fc.property(fc.array(fc.domain(), { maxLength: 3 }), atom, fc.oneof(fc.domain(), domainCase, anyIp.map((ip) => `[${ip.includes(':') ? 'IPv6:' : ''}${ip}]`)), (route, local, domain) => {
      const prefix = route.length ? route.map((r) => `@${r}`).join(',') + ':' : '';
      const v = untrusted(`${prefix}${local}@${domain}`);
      const target = domain.toLowerCase().replace(/\.$/, '');
      if (v.ok) return route.length === 0 && policy.relayDomains.has(target);
      return true;
    }), { numRuns: 500 });
  });

  it('property: a trusted client is never refused; an outsider without routing to a relay domain always accepted', () => {
    fc.assert(fc.property(atom, domainCase, fc.constantFrom('10.0.0.1', '192.0.2.7'), (local, domain, ip) => {
      return relayVerdict(`${local}@${domain}`, ip, false, policy).ok && untrusted(`${local}@${domain}`).ok;
    }), { numRuns: 300 });
  });
});
