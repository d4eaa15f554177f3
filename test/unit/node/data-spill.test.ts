// shouldSpill (smtp/data-spill.ts), driven the way InboundSmtp.onData drives it: sessions
// receive chunks in random interleavings. What must hold: the DATA held unwritten by all
// sessions stays within the budget plus a step and a chunk per session (and each session
// within its threshold plus a chunk); a message smaller than a step never goes to a blob;
// without pressure a message up to the threshold stays in memory (one spool record).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { shouldSpill } from '../../../node-image/src/smtp/data-spill.ts';

describe('DATA spill decisions', () => {
  it('over random sessions and chunkings: bounded memory, small messages stay inline', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 300 }),
      fc.integer({ min: 50, max: 400 }),
      fc.integer({ min: 1, max: 2000 }),
      fc.array(fc.nat(), { minLength: 50, maxLength: 50 }),
      (sizes, step, thresholdExtra, budget, picks) => {
        const limits = { thresholdBytes: step + thresholdExtra, stepBytes: step, budgetBytes: budget };
        const maxChunk = 97;
        const sessions = sizes.map((size) => ({ size, got: 0, held: 0, spilling: false }));
        let heldByUnspilled = 0;
        let k = 0;
        for (;;) {
          const open = sessions.filter((s) => s.got < s.size);
          if (open.length === 0) break;
          const s = open[picks[k++ % picks.length] % open.length];
          const c = Math.min(1 + (picks[k % picks.length] % maxChunk), s.size - s.got);
          s.got += c;
          s.held += c;
          if (!s.spilling) heldByUnspilled += c;
          if (shouldSpill(s.held, s.spilling, heldByUnspilled, limits)) {
            if (!s.spilling) heldByUnspilled -= s.held;
            s.spilling = true;
            s.held = 0;
          }
          assert.ok(s.held < limits.thresholdBytes + maxChunk, 'a session holds at most its threshold and a chunk');
          assert.ok(heldByUnspilled <= budget + sessions.length * (step + maxChunk), `held ${heldByUnspilled} over budget ${budget} + slack`);
          if (s.got === s.size && !s.spilling) heldByUnspilled -= s.held; // the transaction ends inline
        }
        for (const s of sessions) {
          if (s.size < step) assert.equal(s.spilling, false, 'a message under one step never goes to a blob');
        }
      },
    ), { numRuns: 300 });
  });

  it('without pressure a message stays in memory up to the threshold', () => {
    const limits = { thresholdBytes: 256, stepBytes: 64, budgetBytes: 1000 };
    assert.equal(shouldSpill(255, false, 255, limits), false);
    assert.equal(shouldSpill(256, false, 256, limits), true);
    assert.equal(shouldSpill(100, false, 1001, limits), true, 'past a step under pressure');
    assert.equal(shouldSpill(63, false, 5000, limits), false, 'never under a step');
    assert.equal(shouldSpill(64, true, 0, limits), true, 'spilling: every step');
  });
});
