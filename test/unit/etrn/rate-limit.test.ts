import assert from 'node:assert/strict';
import { TokenBucketLimiter } from '../../../node-image/src/etrn/rate-limit.ts';

describe('ETRN per-client token bucket', () => {
  it('allows a burst, then one per refill period, per client', () => {
    const l = new TokenBucketLimiter({ burst: 2, refillSeconds: 10 });
    assert.equal(l.take('192.0.2.1', 0), 0);
    assert.equal(l.take('192.0.2.1', 0), 0);
    assert.equal(l.take('192.0.2.1', 1000), 9);
    assert.equal(l.take('192.0.2.2', 1000), 0, 'another client has its own bucket');
    assert.equal(l.take('192.0.2.1', 10_000), 0);
    assert.equal(l.take('192.0.2.1', 10_000), 10);
  });

  it('forgets the least recently seen clients past its size', () => {
    const l = new TokenBucketLimiter({ burst: 1, refillSeconds: 60, maxClients: 2 });
    assert.equal(l.take('a', 0), 0);
    assert.equal(l.take('b', 0), 0);
    assert.equal(l.take('c', 0), 0);
    assert.equal(l.take('a', 0), 0, '"a" was forgotten, so it starts with a full bucket');
  });

  it('refuses nonsense settings', () => {
    assert.throws(() => new TokenBucketLimiter({ burst: 0, refillSeconds: 1 }), /burst >= 1/);
  });
});
