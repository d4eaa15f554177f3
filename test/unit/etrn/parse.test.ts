import assert from 'node:assert/strict';
import { formatEtrnTarget, isDomainName, isEtrnAllowed, parseEtrnArgument } from '../../../node-image/src/etrn/parse.ts';

describe('ETRN argument parsing (RFC 1985)', () => {
  it('reads a domain, lower-cased, without a trailing dot', () => {
    assert.deepEqual(parseEtrnArgument(' Customer.EXAMPLE. '), { ok: true, target: { domain: 'customer.example', subdomains: false } });
  });

  it('reads @domain as the domain and its subdomains', () => {
    assert.deepEqual(parseEtrnArgument('@customer.example'), { ok: true, target: { domain: 'customer.example', subdomains: true } });
    assert.equal(formatEtrnTarget({ domain: 'customer.example', subdomains: true }), '@customer.example');
  });

  it('refuses a named queue with 458 and says why', () => {
    const r = parseEtrnArgument('#outbound');
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.refusal.code, 458);
      assert.match(r.refusal.message, /Named queues \(#outbound\) are not supported/);
    }
  });

  for (const bad of ['', '   ', 'a b', 'exa_mple.com', '-bad.example', '@', 'x..y', 'a'.repeat(64) + '.example', '[192.0.2.1]']) {
    it(`answers 501 to ${JSON.stringify(bad)}`, () => {
      const r = parseEtrnArgument(bad);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.refusal.code, 501);
    });
  }

  it('knows domain names', () => {
    assert.equal(isDomainName('a.b-c.example'), true);
    assert.equal(isDomainName('b-.example'), false);
  });

  it('allows relay domains and their subdomains only', () => {
    const relay = ['customer.example', 'other.example'];
    assert.equal(isEtrnAllowed({ domain: 'customer.example', subdomains: false }, relay), true);
    assert.equal(isEtrnAllowed({ domain: 'mail.customer.example', subdomains: false }, relay), true);
    assert.equal(isEtrnAllowed({ domain: 'customer.example', subdomains: true }, relay), true);
    assert.equal(isEtrnAllowed({ domain: 'example', subdomains: true }, relay), false);
    assert.equal(isEtrnAllowed({ domain: 'notcustomer.example', subdomains: false }, relay), false);
    assert.equal(isEtrnAllowed({ domain: 'foreign.example', subdomains: false }, relay), false);
  });
});
