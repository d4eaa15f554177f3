// The spool on a real filesystem: recovery of committed records, a torn tail, segment
// rotation, deletion and compaction.
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
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
    const s = await Spool.open(dir, { segmentBytes: 2000, compactIntervalMs: 20 });
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
});
