// The spool on a real filesystem: recovery of committed records, a torn tail, segment
// rotation, deletion and compaction.
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
import fc from 'fast-check';
import { Spool } from '../../../node-image/src/spool/spool.ts';
import type { MessageMeta } from '../../../node-image/src/spool/records.ts';

const meta = (id: string): MessageMeta => ({ id, from: 'a@x.test', rcpts: [{ address: `${id}@y.test`, status: 'pending' }], receivedAt: Date.now(), attempts: 0, nextAttempt: 0, size: 0 });
const segments = (dir: string) => readdirSync(join(dir, 'queue')).filter((n) => n.endsWith('.log')).sort();

describe('spool on disk', () => {
  let dir: string;
  beforeEach(() => { dir = makeTempDir('spool'); });
  afterEach(() => removeTempDir(dir));

  it('recovers committed messages with their latest state, and ignores a torn tail', async () => {
    const s = await Spool.open(dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.add(meta(`M${i}`), Buffer.from(`content ${i}`))));
    assert.ok(s.stats.fsyncs < 50, `group commit: ${s.stats.fsyncs} fsyncs for 50 messages`);
    const m7 = s.messages.get('M7')!;
    m7.meta.rcpts[0] = { address: 'M7@y.test', status: 'deferred', error: '451 later' };
    m7.meta.attempts = 3;
    await s.update('M7');
    for (let i = 0; i < 10; i++) await s.remove(`M${i + 20}`);
    await s.close();
    // a crash in the middle of the next write
    const [last] = segments(dir).slice(-1);
    appendFileSync(join(dir, 'queue', last), Buffer.from([0x4d, 0x43, 0x4c, 0x31, 1, 0, 0, 9]));
    const r = await Spool.open(dir);
    assert.equal(r.messages.size, 40);
    assert.equal(r.messages.get('M7')!.meta.attempts, 3);
    assert.equal(r.messages.get('M7')!.meta.rcpts[0].status, 'deferred');
    assert.equal(r.messages.has('M25'), false);
    assert.equal((await r.readContent('M33')).toString(), 'content 33');
    await r.add(meta('after'), Buffer.from('new'));
    await r.close();
    const again = await Spool.open(dir);
    assert.equal(again.messages.size, 41);
    assert.equal((await again.readContent('after')).toString(), 'new');
    await again.close();
  });

  it('rotates segments, deletes dead ones oldest first, and compacts a long-lived message forward', async () => {
    const s = await Spool.open(dir, { segmentBytes: 2000, compactIntervalMs: 20, compaction: { minReclaimBytes: 0 } });
    await s.add(meta('keep'), Buffer.from('k'.repeat(500)));
    const first = segments(dir)[0];
    for (let i = 0; i < 20; i++) await s.add(meta(`T${i}`), Buffer.from('t'.repeat(500)));
    assert.ok(segments(dir).length > 3, `rotated: ${segments(dir).join(' ')}`);
    for (let i = 0; i < 20; i++) await s.remove(`T${i}`);
    await waitUntil('old segments gone', () => s.segmentCount <= 2 && !segments(dir).includes(first), { timeoutMs: 5000, intervalMs: 20 });
    assert.equal((await s.readContent('keep')).toString(), 'k'.repeat(500));
    await s.close();
    const r = await Spool.open(dir);
    assert.deepEqual([...r.messages.keys()], ['keep']);
    assert.equal((await r.readContent('keep')).toString(), 'k'.repeat(500));
    await r.close();
  });

  it('deferral updates never copy content: a held backlog costs only its state records, and old state records are reclaimed', async () => {
    const s = await Spool.open(dir, { segmentBytes: 4000, compactIntervalMs: 1e9, updateDelayMs: 0 });
    for (let i = 0; i < 24; i++) await s.add(meta(`H${i}`), Buffer.from('h'.repeat(500)));
    const contentSegments = segments(dir).slice(0, 3);
    const accepted = s.stats.bytesWritten.accept;
    for (let round = 1; round <= 60; round++) {
      for (let i = 0; i < 24; i++) {
        const m = s.messages.get(`H${i}`)!;
        m.meta.attempts = round;
        m.meta.rcpts[0] = { ...m.meta.rcpts[0], status: 'deferred', error: `451 try ${round}` };
        await s.update(`H${i}`);
      }
      await s.flush();
      await s.maintain();
    }
    assert.equal(s.stats.bytesWritten.compaction, 0, 'no message content copied');
    assert.equal(s.stats.bytesWritten.accept, accepted);
    for (const f of contentSegments) assert.ok(segments(dir).includes(f), `${f} (fully live) kept as it is`);
    assert.ok(s.segmentCount <= 12, `superseded state records reclaimed: ${s.segmentCount} segments`);
    await s.close();
    const r = await Spool.open(dir);
    assert.equal(r.messages.size, 24);
    assert.ok([...r.messages.values()].every((m) => m.meta.attempts === 60));
    await r.close();
  });

  it('model check: random adds (inline and blob), updates, removals, compactions and crashes keep every message exactly once with its latest state', async () => {
    type Op = { op: 'add'; size: number; blob: boolean } | { op: 'update'; k: number } | { op: 'remove'; k: number } | { op: 'maintain' } | { op: 'crash' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), size: fc.integer({ min: 1, max: 300 }), blob: fc.boolean() }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('update' as const), k: fc.nat() }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('remove' as const), k: fc.nat() }) },
      { weight: 2, arbitrary: fc.constant({ op: 'maintain' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'crash' as const }) },
    );
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 120 }), async (ops) => {
      const d = makeTempDir('spool-model');
      const opts = { segmentBytes: 400, compactIntervalMs: 1e9, updateDelayMs: 3, compaction: { budgetBytesPerHour: 1e12 } };
      let s = await Spool.open(d, opts);
      const model = new Map<string, { content: string; attempts: number }>();
      let n = 0;
      const check = async () => {
        assert.deepEqual([...s.messages.keys()].sort(), [...model.keys()].sort());
        for (const [id, want] of model) {
          assert.equal(s.messages.get(id)!.meta.attempts, want.attempts, `${id} state`);
          assert.equal((await s.readContent(id)).toString(), want.content, `${id} content`);
        }
      };
      try {
        for (const o of ops) {
          const ids = [...model.keys()];
          if (o.op === 'add') {
            const id = `M${n++}`;
            const content = `${id}:`.padEnd(o.size, String.fromCharCode(97 + (n % 26)));
            if (o.blob) {
              const w = await s.createBlob(id);
              await w.write(Buffer.from(content));
              await s.addBlob(meta(id), await w.finish());
            } else {
              await s.add(meta(id), Buffer.from(content));
            }
            model.set(id, { content, attempts: 0 });
          } else if (o.op === 'update' && ids.length) {
            const id = ids[o.k % ids.length];
            const m = s.messages.get(id)!;
            m.meta.attempts++;
            model.get(id)!.attempts = m.meta.attempts;
            await s.update(id);
          } else if (o.op === 'remove' && ids.length) {
            const id = ids[o.k % ids.length];
            model.delete(id);
            await s.remove(id);
          } else if (o.op === 'maintain') {
            await s.maintain();
          } else if (o.op === 'crash') {
            // nothing pending: the new instance sees what a kill -9 leaves
            await s.flush();
            s = await Spool.open(d, opts);
            await check();
          }
        }
        await s.maintain();
        await s.flush();
        s = await Spool.open(d, opts);
        await check();
        assert.equal(s.stats.quarantined, 0);
        const blobs = readdirSync(join(d, 'queue', 'blob')).length;
        assert.equal(blobs, [...s.messages.values()].filter((m) => m.meta.blob).length, 'no orphan blob');
      } finally {
        await s.close();
        removeTempDir(d);
      }
    }), { numRuns: 40 });
  });
});
