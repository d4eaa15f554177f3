// Property tests of the spool's pure parts: the compaction policy and the record decoder's
// resync past a corrupted record.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideCompaction, defaultCompactionSettings, liveShare, refill } from '../../../node-image/src/spool/compaction-policy.ts';
import type { Budget, CompactionSettings, SegmentView } from '../../../node-image/src/spool/compaction-policy.ts';
import { decodeSegment, encodeDone, encodeMessage, encodeUpdate, HEADER_BYTES } from '../../../node-image/src/spool/records.ts';
import type { MessageMeta } from '../../../node-image/src/spool/records.ts';

const settings: CompactionSettings = { ...defaultCompactionSettings, budgetBytesPerHour: 1_000_000, lowSpaceBytes: 1000 };

// segments with message records (content) and state records; some without the content split
const segmentArb = fc.record({
  size: fc.integer({ min: 0, max: 100_000 }), contentShare: fc.double({ min: 0, max: 1, noNaN: true }), liveContent: fc.double({ min: 0, max: 1, noNaN: true }),
  liveMeta: fc.double({ min: 0, max: 1, noNaN: true }), split: fc.boolean(), current: fc.boolean(),
}).map(({ size, contentShare, liveContent, liveMeta, split, current }) => {
  const contentBytes = Math.floor(size * contentShare);
  const liveContentBytes = Math.floor(contentBytes * liveContent);
  const liveBytes = liveContentBytes + Math.floor((size - contentBytes) * liveMeta);
  return split ? { size, liveBytes, contentBytes, liveContentBytes, current } : { size, liveBytes, current };
});
const segmentsArb = fc.array(segmentArb, { maxLength: 12 }).map((xs) => xs.map((s, i): SegmentView => ({ seq: i + 1, ...s })));

describe('spool compaction policy', () => {
  it('never rewrites the current segment, an empty one, or a mostly-live one on a roomy disk; stays within the budget', () => {
    fc.assert(fc.property(segmentsArb, fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: 0, max: 10_000 }), (segs, tokens, free) => {
      const d = decideCompaction(segs, { tokens, at: 0 }, free, settings);
      if (!d.compact) return;
      const s = segs.find((x) => x.seq === d.seq)!;
      assert.ok(!s.current && s.liveBytes > 0);
      assert.equal(d.copyBytes, s.liveBytes);
      const short = free < settings.lowSpaceBytes;
      if (!short) {
        assert.ok(liveShare(s, false) < settings.minLiveShare, 'a roomy disk rewrites only a sparse segment');
        if ((s.liveContentBytes ?? 0) > 0) assert.ok(s.liveContentBytes! / s.contentBytes! < settings.minLiveShare, 'messages are copied only when most message bytes are dead');
        assert.ok(s.liveBytes <= tokens, 'within the budget');
      } else {
        assert.ok(1 - s.liveBytes / s.size >= settings.minFreedShareWhenShort, 'a short disk rewrites only where it frees space');
      }
      // the chosen one is the sparsest eligible one
      for (const o of segs) {
        if (o.current || o.liveBytes <= 0 || o.size <= 0) continue;
        const oShare = liveShare(o, short);
        const eligible = (oShare < settings.minLiveShare || (short && 1 - oShare >= settings.minFreedShareWhenShort)) && (short || o.liveBytes <= tokens);
        if (eligible) assert.ok(liveShare(s, short) <= oShare);
      }
    }));
  });

  it('compacts something whenever a sparse segment fits the budget', () => {
    fc.assert(fc.property(segmentsArb, (segs) => {
      const fits = segs.some((s) => !s.current && s.liveBytes > 0 && s.size > 0 && liveShare(s, false) < 0.5);
      assert.equal(decideCompaction(segs, { tokens: Infinity, at: 0 }, 1e12, settings).compact, fits);
    }));
  });

  it('bounds bytes rewritten in any window by the budget: at most (1 + hours) x budgetBytesPerHour', () => {
    // a policy loop over random segment states and random clock steps, spending what it decides
    fc.assert(fc.property(fc.array(fc.tuple(segmentsArb, fc.integer({ min: 0, max: 600_000 })), { minLength: 1, maxLength: 60 }), (steps) => {
      let budget: Budget = { tokens: settings.budgetBytesPerHour, at: 0 };
      let now = 0;
      let spent = 0;
      for (const [segs, dt] of steps) {
        now += dt;
        budget = refill(budget, now, settings);
        assert.ok(budget.tokens <= settings.budgetBytesPerHour);
        const d = decideCompaction(segs, budget, 1e12, settings);
        if (d.compact) { budget = { ...budget, tokens: budget.tokens - d.copyBytes }; spent += d.copyBytes; }
        assert.ok(budget.tokens >= 0);
      }
      assert.ok(spent <= settings.budgetBytesPerHour * (1 + now / 3_600_000) + 1e-6, `spent ${spent} in ${now} ms`);
    }));
  });

  it('on a roomy disk, starts only when the sparse segments hold minReclaimBytes of dead bytes', () => {
    const withMin = { ...settings, minReclaimBytes: 50_000 };
    fc.assert(fc.property(segmentsArb, (segs) => {
      const d = decideCompaction(segs, { tokens: Infinity, at: 0 }, 1e12, withMin);
      const dead = segs.filter((s) => !s.current && s.liveBytes > 0 && s.size > 0 && liveShare(s, false) < 0.5).reduce((n, s) => n + s.size - s.liveBytes, 0);
      assert.equal(d.compact, dead >= withMin.minReclaimBytes);
    }));
  });

  it('a held backlog (every segment fully live) is never rewritten, however long it waits', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 1e8 }), { maxLength: 40 }), (sizes) => {
      const segs = sizes.map((size, i) => ({ seq: i + 1, size, liveBytes: size, current: i === sizes.length - 1 }));
      assert.equal(decideCompaction(segs, { tokens: Infinity, at: 0 }, 1e15, settings).compact, false);
    }));
  });
});

const meta = (id: string, n: number): MessageMeta => ({ id, from: 'a@x.test', rcpts: [{ address: `${id}@y.test`, status: 'pending' }], receivedAt: n, attempts: 0, nextAttempt: n, size: n });
const recordArb = fc.oneof(
  fc.tuple(fc.constant('m' as const), fc.nat(2000), fc.integer({ min: 0, max: 255 })),
  fc.tuple(fc.constant('u' as const), fc.nat(10), fc.constant(0)),
  fc.tuple(fc.constant('d' as const), fc.constant(0), fc.constant(0)),
);

describe('spool record decoder: resync past corruption', () => {
  it('recovers every record but the corrupted one, wherever in it the damage is', () => {
    fc.assert(fc.property(fc.array(recordArb, { minLength: 2, maxLength: 30 }), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(),
      (specs, whichRaw, whereRaw, xor, header) => {
        const records = specs.map(([kind, n, fill], i) => {
          const id = `R${i}`;
          if (kind === 'm') return encodeMessage(meta(id, n), Buffer.alloc(n, fill)).record;
          if (kind === 'u') return encodeUpdate({ id, rcpts: [], attempts: n, nextAttempt: n });
          return encodeDone(id);
        });
        const which = whichRaw % records.length;
        const bad = Buffer.from(records[which]);
        if (header) {
          // the header's magic goes: recovery has to scan for the next valid record
          bad[whereRaw % 4] ^= xor;
        } else {
          if (bad.length <= HEADER_BYTES) return;
          bad[HEADER_BYTES + (whereRaw % (bad.length - HEADER_BYTES))] ^= xor;
        }
        const buf = Buffer.concat(records.map((r, i) => (i === which ? bad : r)));
        const d = decodeSegment(buf);
        const offsets = d.records.map((r) => r.offset);
        let off = 0;
        const expected: number[] = [];
        records.forEach((r, i) => { if (i !== which) expected.push(off); off += r.length; });
        assert.deepEqual(offsets, expected);
        const start = records.slice(0, which).reduce((n, r) => n + r.length, 0);
        const regions = [...d.bad, ...(d.tail ? [d.tail] : [])];
        assert.deepEqual(regions.map((r) => [r.offset, r.length]), [[start, bad.length]]);
        if (d.tail) assert.equal(d.tail.torn, false, 'a complete corrupt record is not a torn tail');
      }));
  });

  it('skips a record whose magic is damaged by its length, never reading a record a sender forged inside its content', () => {
    const forged = encodeDone('VICTIM');
    const hostile = encodeMessage(meta('H', 1), Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), forged, Buffer.from('\r\n')])).record;
    const victim = encodeMessage(meta('VICTIM', 1), Buffer.from('acknowledged')).record;
    const after = encodeMessage(meta('AFTER', 1), Buffer.from('later')).record;
    for (let i = 0; i < 4; i++) {
      const bad = Buffer.from(hostile);
      bad[i] ^= 0xff;
      const d = decodeSegment(Buffer.concat([victim, bad, after]));
      assert.deepEqual(d.records.map((r) => (r.type === 'done' ? `done ${r.id}` : r.type === 'message' ? r.meta.id : r.type)), ['VICTIM', 'AFTER']);
      assert.deepEqual(d.bad.map((b) => [b.offset, b.length]), [[victim.length, hostile.length]]);
    }
  });

  it('a torn tail (incomplete last record) is reported as torn, not quarantined', () => {
    const a = encodeMessage(meta('A', 1), Buffer.from('first')).record;
    const b = encodeMessage(meta('B', 1), Buffer.from('second')).record;
    for (let cut = 1; cut < b.length; cut++) {
      const d = decodeSegment(Buffer.concat([a, b.subarray(0, cut)]));
      assert.equal(d.records.length, 1);
      assert.equal(d.tail?.torn, true);
      assert.deepEqual(d.bad, []);
    }
  });
});
