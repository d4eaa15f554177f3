import assert from 'node:assert/strict';
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
});
