// The bound on writes in flight across reconciles (in-flight.ts): never more than the limit at
// once, every task runs, in the order they asked, and a failure frees its slot.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InFlightLimit } from '../../../operator/src/controller/in-flight.ts';

describe('operator: writes in flight at once', () => {
  it('property: at most `limit` at once, every task runs once, first come first served', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.boolean()), { minLength: 1, maxLength: 40 }), async (limit, tasks) => {
      const l = new InFlightLimit(limit);
      let active = 0;
      let most = 0;
      const started: number[] = [];
      const results = await Promise.allSettled(tasks.map(([ticks, fail], i) => l.run(async () => {
        started.push(i);
        active++;
        most = Math.max(most, active);
        for (let t = 0; t < ticks; t++) await new Promise((r) => setImmediate(r));
        active--;
        if (fail) throw new Error(`task ${i}`);
        return i;
      })));
      assert.ok(most <= limit, `${most} at once, limit ${limit}`);
      assert.deepEqual(started, tasks.map((_, i) => i), 'in the order asked');
      results.forEach((r, i) => assert.equal(r.status, tasks[i][1] ? 'rejected' : 'fulfilled'));
      assert.equal(l.inFlight, 0);
      assert.equal(l.queued, 0);
    }), { numRuns: 100 });
  });

  it('refuses a limit below 1', () => {
    assert.throws(() => new InFlightLimit(0), /at least|>= 1/);
  });
});
