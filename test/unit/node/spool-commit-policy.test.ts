import assert from 'node:assert/strict';
import fc from 'fast-check';
import { commitVerdict } from '../../../node-image/src/spool/commit-policy.ts';
import type { Urgency } from '../../../node-image/src/spool/commit-policy.ts';

const rec = (urgency: Urgency, at = 0) => ({ urgency, at });

describe('spool commit policy', () => {
  it('a record a reply waits for goes at once, whatever rides with it', () => {
    assert.deepEqual(commitVerdict([rec('ride'), rec('lazy'), rec('now')], 3, false, 0, 1000), { wait: false });
  });
  it('removals ride with the running commit, and go alone only when none runs', () => {
    assert.deepEqual(commitVerdict([rec('ride')], 1, false, 0, 1000), { wait: 'commit' });
    assert.deepEqual(commitVerdict([rec('lazy', 0), rec('ride')], 0, false, 0, 1000), { wait: false });
  });
  it('state updates alone wait for company up to the update delay', () => {
    assert.deepEqual(commitVerdict([rec('lazy', 100), rec('lazy', 500)], 0, false, 400, 1000), { wait: 'timer', ms: 700 });
    assert.deepEqual(commitVerdict([rec('lazy', 100)], 0, false, 1100, 1000), { wait: false });
    assert.deepEqual(commitVerdict([rec('lazy', 100)], 2, false, 5000, 1000), { wait: 'commit' });
  });
  it('never leaves records waiting with nothing to wake them, and flush sends everything (property)', () => {
    const urgency = fc.constantFrom<Urgency>('now', 'ride', 'lazy');
    // records were queued at or before now, oldest first
    fc.assert(fc.property(fc.array(fc.record({ urgency, age: fc.nat(3000) }), { minLength: 1, maxLength: 20 }), fc.nat(4), fc.boolean(), (queued, flights, flushing) => {
      const now = 10_000;
      const pending = queued.map((q) => ({ urgency: q.urgency, at: now - q.age })).sort((a, b) => a.at - b.at);
      const v = commitVerdict(pending, flights, flushing, now, 1000);
      if (flushing || pending.some((p) => p.urgency === 'now')) assert.deepEqual(v, { wait: false });
      // waiting for a commit needs one running (its end pumps again); a timer needs a positive delay
      if (v.wait === 'commit') assert.ok(flights > 0);
      if (v.wait === 'timer') assert.ok(v.ms > 0 && v.ms <= 1000 && pending.every((p) => p.urgency === 'lazy'));
    }));
  });
});
