import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readingReusable, ROOMY_BYTES, ROOMY_REUSE_MS } from '../../../node-image/src/storage/free-space.ts';

describe('free-space reading reuse', () => {
  it('reuses a reading only briefly and only far above the reserve', () => {
    assert.equal(readingReusable(10, 10 * ROOMY_BYTES, 1000), true);
    assert.equal(readingReusable(ROOMY_REUSE_MS, 10 * ROOMY_BYTES, 1000), false, 'too old');
    assert.equal(readingReusable(10, ROOMY_BYTES + 999, 1000), false, 'near the reserve');
    assert.equal(readingReusable(10, Infinity, 0), true);
  });
  it('a reused reading never hides a crossing of the reserve by less than ROOMY_BYTES of writes (property)', () => {
    fc.assert(fc.property(fc.nat(200), fc.nat(2 ** 40), fc.nat(2 ** 36), fc.nat(ROOMY_BYTES - 1), (age, free, minFree, writtenSince) => {
      // whatever was written since the reading (less than ROOMY_BYTES), a reusable reading's verdict still holds
      if (readingReusable(age, free, minFree)) assert.ok(free - writtenSince >= minFree);
    }));
  });
});
