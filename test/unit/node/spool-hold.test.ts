// A hold is a spool update record (issue 14): it survives reopening the spool (a restart),
// compaction (the message copied forward keeps it), and a release is durable the same way.
// Real files in a temp dir.
import assert from 'node:assert/strict';
import { Spool } from '../../../node-image/src/spool/spool.ts';
import type { MessageMeta } from '../../../node-image/src/spool/records.ts';
import { makeTempDir, removeTempDir } from '../../support/processes.ts';

function meta(id: string): MessageMeta {
  return { id, from: 's@x.test', rcpts: [{ address: 'a@cust.test', status: 'deferred', error: 'down' }], receivedAt: Date.now(), attempts: 1, nextAttempt: Date.now() + 3600_000, size: 5 };
}

describe('spool: held state is durable', () => {
  let dir: string;
  beforeEach(() => { dir = makeTempDir('spool-hold'); });
  afterEach(() => removeTempDir(dir));

  // small segments and a compaction policy that rewrites any segment with a dead byte (the
  // spool branch's policy otherwise waits for a segment's worth of dead bytes)
  const options = { segmentBytes: 256, compactIntervalMs: 3600_000, compaction: { minLiveShare: 1, minReclaimBytes: 0, budgetBytesPerHour: 1e12 } };
  const reopen = async (spool: Spool) => { await spool.close(); return Spool.open(dir, options); };

  it('survives a reopen and compaction; release is durable too; other updates keep it', async () => {
    let spool = await Spool.open(dir, options);
    await spool.add(meta('H'), Buffer.from('hello'));
    await spool.add(meta('D'), Buffer.from('gone'));
    await spool.add(meta('N'), Buffer.from('world'));
    spool.messages.get('H')!.meta.held = true;
    await spool.commitUpdate('H');
    // a later ordinary update (an attempt's bookkeeping; lazy since the spool branch, close() flushes it) carries the hold along
    spool.messages.get('H')!.meta.attempts = 2;
    await spool.update('H');
    await spool.remove('D'); // dead bytes beside H: its segment is worth compacting
    spool = await reopen(spool);
    assert.equal(spool.messages.get('H')?.meta.held, true);
    assert.equal(spool.messages.get('H')?.meta.attempts, 2);
    assert.equal(spool.messages.get('N')?.meta.held, undefined);
    // the oldest segment is compacted: H is copied forward with its meta
    const segBefore = spool.messages.get('H')!.seg;
    await spool.maintain();
    assert.notEqual(spool.messages.get('H')!.seg, segBefore, 'H was copied forward by compaction');
    spool = await reopen(spool);
    assert.equal(spool.messages.get('H')?.meta.held, true);
    assert.equal((await spool.readContent('H')).toString(), 'hello');
    spool.messages.get('H')!.meta.held = false;
    await spool.commitUpdate('H');
    spool = await reopen(spool);
    assert.equal(spool.messages.get('H')?.meta.held, false);
    await spool.close();
  });
});
