// ETRN across the cluster (issue 10): one fan-out in flight per domain (concurrent ETRNs
// share it), no second fan-out right after a peer's relayed one, a per-domain rate that
// counts relayed ETRNs. The MAILQv2 client is a stub that counts relays (the wire protocol
// has its own tests); the decisions are EtrnService's own.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { EtrnService } from '../../../node-image/src/etrn/service.ts';
import type { EtrnSettings } from '../../../node-image/src/etrn/service.ts';
import { EtrnDomainGate } from '../../../node-image/src/etrn/domain-gate.ts';
import type { MailqEtrnOptions, MailqEtrnOutcome } from '../../../node-image/src/mailq/client.ts';

const silent = pino({ level: 'silent' });

function setup(limits = { limit: 3, seconds: 60, relayedWindowSeconds: 10 }) {
  let now = 1_000_000;
  const relays: string[] = [];
  let release: () => void = () => {};
  let gate = Promise.resolve();
  const settings: EtrnSettings = {
    hostname: 'n1.test', relayDomains: ['customer.test'],
    peers: [{ host: '192.0.2.1', port: 174, user: 'etrn', password: 'pw' }, { host: '192.0.2.2', port: 174, user: 'etrn', password: 'pw' }],
    self: { addresses: ['192.0.2.1'], names: ['n1.test'], mailqPort: 174 },
    domainLimits: limits,
  };
  const service = new EtrnService({
    settings: () => settings,
    flush: () => ({ started: 1 }),
    logger: silent,
    registry: new Registry(),
    rateLimit: { burst: 1000, refillSeconds: 1 },
    now: () => now,
    relay: async (o: MailqEtrnOptions): Promise<MailqEtrnOutcome> => {
      relays.push(`${o.host}:${o.argument}`);
      await gate;
      return { result: 'ok', line: '+OK; an ETRN started something.', started: true };
    },
  });
  return {
    service, relays,
    hold: () => { gate = new Promise((r) => { release = r; }); },
    release: () => release(),
    advance: (ms: number) => { now += ms; },
  };
}

describe('ETRN single flight and cluster-wide limits', () => {
  it('concurrent ETRNs for one domain share one fan-out', async () => {
    const t = setup({ limit: 100, seconds: 60, relayedWindowSeconds: 10 });
    t.hold();
    const ctx = { clientIp: '203.0.113.5', inTransaction: false };
    const replies = [1, 2, 3, 4, 5].map(() => t.service.smtpEtrn('customer.test', ctx));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(t.relays.length, 1, 'one relay to the one other peer, for five ETRNs');
    t.release();
    const done = await Promise.all(replies);
    assert.ok(done.every((r) => r === done[0]), 'all five got the shared reply');
    assert.equal(done[0].code, 250);
    await t.service.smtpEtrn('customer.test', ctx);
    assert.equal(t.relays.length, 2, 'after it finished, the next ETRN fans out again');
  });

  it('a node that got a relayed ETRN for the domain flushes locally instead of fanning out again', async () => {
    const t = setup();
    await t.service.mailqEtrn({ argument: 'customer.test', clientIp: '192.0.2.2', user: 'etrn', origin: '[203.0.113.5]@n2.test' });
    const r = await t.service.smtpEtrn('customer.test', { clientIp: '203.0.113.5', inTransaction: false });
    assert.equal(t.relays.length, 0, 'no second fan-out');
    assert.match(r.lines.join('\n'), /pending messages for node customer\.test started/);
    t.advance(10_001);
    await t.service.smtpEtrn('customer.test', { clientIp: '203.0.113.5', inTransaction: false });
    assert.equal(t.relays.length, 1, 'past the window the node fans out itself');
  });

  it('the per-domain rate counts relayed ETRNs: past the limit 458 4.7.0', async () => {
    const t = setup({ limit: 3, seconds: 60, relayedWindowSeconds: 0 });
    const ctx = { clientIp: '203.0.113.5', inTransaction: false };
    await t.service.mailqEtrn({ argument: 'customer.test', clientIp: '192.0.2.2', user: 'etrn', origin: 'x' });
    await t.service.mailqEtrn({ argument: 'customer.test', clientIp: '192.0.2.2', user: 'etrn', origin: 'x' });
    assert.equal((await t.service.smtpEtrn('customer.test', ctx)).code, 250);
    const refused = await t.service.smtpEtrn('customer.test', ctx);
    assert.equal(refused.code, 458);
    assert.match(refused.lines[0], /^4\.7\.0 .*too many ETRN requests for this domain, try again in \d+ s/);
    assert.equal((await t.service.smtpEtrn('sub.customer.test', ctx)).code, 250, 'another domain (a subdomain) has its own count');
    t.advance(60_000);
    assert.equal((await t.service.smtpEtrn('customer.test', ctx)).code, 250, 'the window passed');
  });

  it('property: the gate never lets more than `limit` fan-outs into any window, relayed ones counted', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('smtp', 'relayed'), fc.constantFrom('a.test', 'b.test'), fc.integer({ min: 0, max: 20_000 })), { maxLength: 120 }), (events) => {
      const limits = { limit: 4, seconds: 60, relayedWindowSeconds: 5 };
      const gate = new EtrnDomainGate();
      let now = 0;
      const counted: Record<string, number[]> = {};
      for (const [kind, domain, dt] of events) {
        now += dt;
        if (kind === 'relayed') { gate.relayed(domain, now, limits); (counted[domain] ??= []).push(now); continue; }
        const d = gate.decide(domain, now, limits);
        if (d.kind === 'fan-out') {
          const before = (counted[domain] ?? []).filter((t) => now - t < 60_000).length;
          if (before >= limits.limit) return false;
          (counted[domain] ??= []).push(now);
        }
      }
      return true;
    }), { numRuns: 300 });
  });
});
