import assert from 'node:assert/strict';
import { AddressPool, cidrContains, parseCidr } from '../../../local/src/loadbalancer/address-pool.ts';

describe('local address ranges', () => {
  it('parses a /16 inside 127.0.0.0/8 and rejects others with a clear error', () => {
    assert.deepEqual(parseCidr('127.30.0.0/16'), { base: (127 * 256 + 30) * 65536, size: 65536 });
    assert.throws(() => parseCidr('10.0.0.0/16'), /must lie inside 127\.0\.0\.0\/8/);
    assert.throws(() => parseCidr('127.30.0.0'), /invalid address range/);
    assert.ok(cidrContains(parseCidr('127.30.0.0/16'), '127.30.4.5'));
    assert.ok(!cidrContains(parseCidr('127.30.0.0/16'), '127.31.0.1'));
  });

  it('gives each key its own address, stable per key, and a new one after release', () => {
    const pool = new AddressPool('127.40.0.0/16');
    const a = pool.allocate('pod-a');
    const b = pool.allocate('pod-b');
    assert.equal(a, '127.40.0.1');
    assert.equal(b, '127.40.0.2');
    assert.equal(pool.allocate('pod-a'), a);
    pool.release('pod-a');
    assert.notEqual(pool.allocate('pod-c'), a, 'a freed address is not handed out again at once');
  });

  it('reserves an address an object already has, never a taken or out-of-range one', () => {
    const pool = new AddressPool('127.40.0.0/16');
    assert.ok(pool.reserve('x', '127.40.9.9'));
    assert.ok(!pool.reserve('y', '127.40.9.9'));
    assert.ok(!pool.reserve('y', '127.41.0.1'));
    assert.equal(pool.get('x'), '127.40.9.9');
  });

  it('skips .0 and .255 and reports exhaustion', () => {
    const pool = new AddressPool('127.44.0.0/24');
    const all = new Set<string>();
    for (let i = 0; i < 254; i++) all.add(pool.allocate(`k${i}`));
    assert.equal(all.size, 254);
    assert.ok(!all.has('127.44.0.0') && !all.has('127.44.0.255'));
    assert.throws(() => pool.allocate('one-more'), /exhausted/);
  });
});
