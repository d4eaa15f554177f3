import assert from 'node:assert/strict';
import { chooseMxHosts, domainLiteral, domainOf, selfSet } from '../../../node-image/src/routing/route.ts';
import type { MxCandidate } from '../../../node-image/src/routing/route.ts';
import { backoffMs, classifySendError, domainMatches } from '../../../node-image/src/delivery/policy.ts';

const mx = (exchange: string, priority: number, ...addresses: string[]): MxCandidate => ({ exchange, priority, addresses });

describe('routing: the SELFADDRESSES rule', () => {
  it('orders by preference when no MX is ours', () => {
    const r = chooseMxHosts('c.example', [mx('b.c.example', 20, '192.0.2.2'), mx('a.c.example', 10, '192.0.2.1')], selfSet(['10.0.0.5']));
    assert.deepEqual(r.kind === 'deliver' && r.hosts.map((h) => h.exchange), ['a.c.example', 'b.c.example']);
  });

  it('drops a self MX and every MX of equal or worse preference (by name)', () => {
    const r = chooseMxHosts('c.example', [
      mx('mail.c.example', 10, '192.0.2.1'), mx('smtp.isp.example', 20, '203.0.113.1'),
      mx('other.isp.example', 20, '203.0.113.9'), mx('last.example', 30, '192.0.2.30'),
    ], selfSet(['smtp.isp.example']));
    assert.deepEqual(r.kind === 'deliver' && r.hosts.map((h) => h.exchange), ['mail.c.example']);
  });

  it('matches self by address: plain, bracketed and IPv6 literals', () => {
    const records = [mx('mail.c.example', 10, '192.0.2.1'), mx('lb.isp.example', 20, '203.0.113.1')];
    for (const self of [['203.0.113.1'], ['[203.0.113.1]'], ['name.example', '[203.0.113.1]']]) {
      const r = chooseMxHosts('c.example', records, selfSet(self));
      assert.deepEqual(r.kind === 'deliver' && r.hosts.map((h) => h.exchange), ['mail.c.example'], String(self));
    }
    const r6 = chooseMxHosts('c.example', [mx('mail.c.example', 10, '2001:db8::5'), mx('lb', 5, '2001:db8:0:0::1')], selfSet(['[IPv6:2001:db8::1]']));
    assert.equal(r6.kind, 'defer');
  });

  it('defers (never loops to a peer) when the best MX is ours, also for A-record fallback', () => {
    const r = chooseMxHosts('c.example', [mx('smtp.isp.example', 10, '203.0.113.1'), mx('backup.example', 20, '192.0.2.9')], selfSet(['smtp.isp.example']));
    assert.equal(r.kind, 'defer');
    assert.match(r.kind === 'defer' ? r.reason : '', /points to this cluster/);
    const a = chooseMxHosts('c.example', [mx('c.example', 0, '10.0.0.5')], selfSet(['10.0.0.5']));
    assert.equal(a.kind, 'defer');
  });

  it('defers when no MX host has an address, fails on a null MX', () => {
    assert.equal(chooseMxHosts('c.example', [mx('mail.c.example', 10)], selfSet([])).kind, 'defer');
    assert.equal(chooseMxHosts('c.example', [mx('', 0)], selfSet([])).kind, 'fail');
    assert.equal(chooseMxHosts('c.example', [], selfSet([])).kind, 'defer');
  });

  it('domains, literals, selectors, backoff, error classes', () => {
    assert.equal(domainOf('User@Example.COM.'), 'example.com');
    assert.equal(domainLiteral('[192.0.2.1]'), '192.0.2.1');
    assert.equal(domainLiteral('[IPv6:2001:db8::1]'), '2001:db8::1');
    assert.equal(domainLiteral('example.com'), null);
    assert.ok(domainMatches('c.example', { domain: 'c.example', subdomains: false }));
    assert.ok(!domainMatches('a.c.example', { domain: 'c.example', subdomains: false }));
    assert.ok(domainMatches('a.c.example', { domain: 'c.example', subdomains: true }));
    assert.ok(!domainMatches('bc.example', { domain: 'c.example', subdomains: true }));
    assert.deepEqual([1, 2, 3, 4, 10].map((n) => backoffMs(n, 1000, 5000)), [1000, 2000, 4000, 5000, 5000]);
    assert.equal(classifySendError({ responseCode: 550, response: '550 5.1.1 no such user' }).permanent, true);
    assert.equal(classifySendError({ responseCode: 451, response: '451 later' }).permanent, false);
    assert.equal(classifySendError({ code: 'ECONNECTION', message: 'connect ECONNREFUSED' }).tryNextHost, true);
    assert.equal(classifySendError({ code: 'EMESSAGE', message: 'Message size larger than allowed 1000' }).permanent, true);
  });
});
