import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WorkQueue } from '../../../operator/src/controller/workqueue.ts';

describe('operator work queue', () => {
  it('coalesces a key added many times while it waits', async () => {
    const q = new WorkQueue();
    q.add('ns/a'); q.add('ns/a'); q.add('ns/b'); q.add('ns/a');
    assert.equal(q.depth, 2);
    assert.equal(await q.get(), 'ns/a');
    assert.equal(await q.get(), 'ns/b');
    assert.equal(q.depth, 0);
    q.shutDown();
  });

  it('never hands a key being processed to another worker, and re-queues it once when it changed', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const key = await q.get();
    q.add('ns/a'); q.add('ns/a');
    assert.equal(q.depth, 0, 'held back while processing');
    q.done(key!);
    assert.equal(q.depth, 1);
    assert.equal(await q.get(), 'ns/a');
    q.done('ns/a');
    assert.equal(q.depth, 0);
    q.shutDown();
  });

  it('wakes a waiting worker', async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.add('ns/x');
    assert.equal(await next, 'ns/x');
    q.shutDown();
  });

  it('backs off exponentially per key, capped, and forgets on success', () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('ns/a')), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(q.addRateLimited('ns/b'), 100, 'per key');
    q.forget('ns/a');
    assert.equal(q.addRateLimited('ns/a'), 100);
    q.shutDown();
  });

  it('adds after a delay, the earliest pending delay winning', async () => {
    const q = new WorkQueue();
    const start = Date.now();
    q.addAfter('ns/a', 5000);
    q.addAfter('ns/a', 30);
    assert.equal(await q.get(), 'ns/a');
    assert.ok(Date.now() - start < 1000);
    q.shutDown();
  });

  it('releases waiting workers on shutdown', async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.shutDown();
    assert.equal(await next, undefined);
  });

  it('urgent lane first, one normal key in every fairEvery; an urgent add moves a waiting key up; a dirty key keeps its lane', async () => {
    const q = new WorkQueue({ fairEvery: 3 });
    for (const k of ['n1', 'n2', 'n3']) q.add(k);
    for (const k of ['u1', 'u2', 'u3', 'u4']) q.add(k, true);
    q.add('n3', true); // moves up
    assert.equal(q.depth, 7);
    const order: string[] = [];
    for (let i = 0; i < 7; i++) order.push((await q.get())!);
    assert.deepEqual(order, ['u1', 'u2', 'n1', 'u3', 'u4', 'n2', 'n3']);
    q.add('u1', true); // u1 is being processed: dirty, urgent
    q.add('n9');
    q.done('u1');
    assert.equal(await q.get(), 'u1');
    q.shutDown();
  });

  it('lanes: every key added comes out exactly once, none starves, coalescing holds (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.boolean()), { maxLength: 60 }), fc.integer({ min: 2, max: 5 }), async (adds, fairEvery) => {
      const q = new WorkQueue({ fairEvery });
      for (const [k, urgent] of adds) q.add(`k${k}`, urgent);
      const distinct = new Set(adds.map(([k]) => `k${k}`));
      assert.equal(q.depth, distinct.size);
      const out: string[] = [];
      while (q.depth > 0) out.push((await q.get())!);
      assert.deepEqual([...out].sort(), [...distinct].sort());
      // the i-th normal key (in the order added) is handed out within (i + 1) * fairEvery keys
      const normal = [...distinct].filter((k) => !adds.some(([n, u]) => `k${n}` === k && u));
      normal.forEach((k, i) => assert.ok(out.indexOf(k) <= (i + 1) * fairEvery - 1, `${k} starved: ${out.join(',')}`));
      q.shutDown();
    }));
  });
});
