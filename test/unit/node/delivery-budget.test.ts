// The delivery content budget (fitsContentBudget), driven the way DeliveryQueue.pump drives
// it: messages start in order, at most `concurrency` at once, and a message that does not fit
// waits at the head until attempts finish. Over random arrival sizes and completion orders:
// the bytes in flight never exceed the budget unless one message is alone, the order is kept,
// and every message is delivered (no starvation of a large one).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { deliveryHeldBytes, fitsContentBudget } from '../../../node-image/src/delivery/policy.ts';

describe('delivery content budget', () => {
  it('a message starts alone whatever its size, and otherwise only within the budget', () => {
    assert.equal(fitsContentBudget(0, 0, 500 * 1024 * 1024, 32), true);
    assert.equal(fitsContentBudget(1, 10, 22, 32), true);
    assert.equal(fitsContentBudget(1, 10, 23, 32), false);
  });

  it('over random workloads: bounded bytes in flight, order kept, everything delivered', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 150 }),
      fc.array(fc.nat(), { minLength: 200, maxLength: 200 }),
      (sizes, concurrency, budget, picks) => {
        const ready = sizes.map((size, id) => ({ id, size }));
        const inFlight: Array<{ id: number; size: number }> = [];
        const started: number[] = [];
        let bytes = 0;
        let step = 0;
        const pump = () => {
          while (ready.length > 0 && inFlight.length < concurrency) {
            const head = ready[0];
            if (!fitsContentBudget(inFlight.length, bytes, head.size, budget)) break;
            ready.shift();
            inFlight.push(head);
            bytes += head.size;
            started.push(head.id);
            assert.ok(inFlight.length === 1 || bytes <= budget, `in flight ${bytes} bytes over budget ${budget}`);
          }
        };
        pump();
        while (inFlight.length > 0) {
          const done = inFlight.splice(picks[step++ % picks.length] % inFlight.length, 1)[0];
          bytes -= done.size;
          pump();
        }
        assert.deepEqual(started, sizes.map((_, i) => i), 'every message started, in order');
      },
    ), { numRuns: 300 });
  });

  it('a streamed (blob-backed) attempt counts what its stream holds, never more than the message', () => {
    fc.assert(fc.property(fc.nat(), fc.boolean(), fc.integer({ min: 1, max: 1 << 20 }), (size, blob, streamed) => {
      const held = deliveryHeldBytes(size, blob, streamed);
      assert.ok(held <= size);
      assert.equal(held, blob ? Math.min(size, streamed) : size);
    }));
  });
});
