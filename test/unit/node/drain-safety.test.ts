// The pure decisions behind the node's safety guarantees: when a node is drained (the one
// fact the operator deletes a spool claim on), the GET /queue report, the free-space
// reserve, and PARAM queue-minfree.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDrained, queueReport } from '../../../node-image/src/admin/queue-report.ts';
import type { QueueObservation } from '../../../node-image/src/admin/queue-report.ts';
import { freeBytes, FreeSpace, storageVerdict } from '../../../node-image/src/storage/free-space.ts';
import { loadConfigDir } from '../../../node-image/src/config/load.ts';
import { parseSmtpserverConf } from '../../../node-image/src/config/parse.ts';
import { ConfigError } from '../../../node-image/src/config/types.ts';

describe('drained (GET /queue, BRIEF contract 2)', () => {
  it('is true for exactly one state: draining, listener closed, no session, nothing spooling, nothing queued', () => {
    // every combination of the facts that matter, each at "none" and "some"
    let trueCount = 0;
    for (const draining of [false, true]) for (const listening of [false, true]) for (const sessions of [0, 1, 7])
      for (const transactions of [0, 1]) for (const total of [0, 1, 360]) for (const held of [0, 1]) {
        if (held > total) continue; // held messages are part of the total
        const o: QueueObservation = { total, deferred: 0, active: 0, held, oldestReceivedAt: total ? 0 : null, draining, listening, sessions, transactions };
        const want = draining && !listening && sessions === 0 && transactions === 0 && total === 0;
        assert.equal(isDrained(o), want, JSON.stringify(o));
        assert.equal(queueReport(o, 0).drained, want);
        if (want) trueCount++;
      }
    assert.equal(trueCount, 1);
  });

  it('reports every contract field, oldestSeconds from the oldest arrival', () => {
    const o: QueueObservation = { total: 5, deferred: 3, active: 1, held: 1, oldestReceivedAt: 10_000, draining: true, listening: false, sessions: 2, transactions: 1 };
    assert.deepEqual(queueReport(o, 75_500), {
      total: 5, deferred: 3, active: 1, held: 1, draining: true, listening: false, sessions: 2, drained: false, oldestSeconds: 65,
    });
    assert.equal(queueReport({ ...o, total: 0, held: 0, oldestReceivedAt: null }, 75_500).oldestSeconds, null);
    assert.equal(queueReport(o, 0).oldestSeconds, 0, 'a clock step back never makes it negative');
  });
});

describe('free-space reserve (PARAM queue-minfree)', () => {
  it('has room at or above the reserve; 0 turns the reserve off', () => {
    assert.equal(storageVerdict(4096, 4096), null);
    assert.equal(storageVerdict(10 ** 12, 4096), null);
    assert.match(storageVerdict(4095, 4096)!, /4095 bytes free .* below queue-minfree 4096/);
    assert.equal(storageVerdict(0, 0), null);
    // a declared SIZE must fit above the reserve too
    assert.equal(storageVerdict(10_000, 4096, 5904), null);
    assert.match(storageVerdict(10_000, 4096, 5905)!, /a 5905-byte message would leave less than queue-minfree 4096/);
    assert.equal(storageVerdict(10_000, 0, 20_000), null, 'reserve off: no check');
    assert.equal(freeBytes({ bavail: 10n, bsize: 4096n }), 40960);
    assert.equal(freeBytes({ bavail: 3, bsize: 512 }), 1536);
  });

  it('reads the real filesystem, and a statfs that fails says nothing (room)', async () => {
    assert.equal(await new FreeSpace(tmpdir(), 1).check(), null);
    assert.match((await new FreeSpace(tmpdir(), Number.MAX_SAFE_INTEGER).check())!, /below queue-minfree/);
    assert.equal(await new FreeSpace('/no/such/dir', Number.MAX_SAFE_INTEGER).check(), null);
  });

  it('parses queue-minfree (bytes, 0 allowed) and defaults to 4 × maxsize', () => {
    assert.equal(parseSmtpserverConf('PARAM queue-minfree 1048576\n', 'f').queueMinFree, 1048576);
    assert.equal(parseSmtpserverConf('PARAM queue-minfree 0\n', 'f').queueMinFree, 0);
    for (const bad of ['-1', '1.5', '10MB', '']) {
      assert.throws(() => parseSmtpserverConf(`PARAM queue-minfree ${bad}\n`, 'f'), (e: unknown) => e instanceof ConfigError && e.line === 1, bad);
    }
    const dir = mkdtempSync(join(tmpdir(), 'mailcluster-minfree-'));
    try {
      writeFileSync(join(dir, 'zmailer.conf'), `POSTOFFICE=${dir}/spool\n`);
      writeFileSync(join(dir, 'scheduler.auth'), '');
      writeFileSync(join(dir, 'smtpserver.conf'), 'PARAM hostname a.example\nPARAM maxsize 1000\n');
      assert.equal(loadConfigDir(dir, {}).config.queueMinFree, 4000);
      writeFileSync(join(dir, 'smtpserver.conf'), 'PARAM hostname a.example\n');
      assert.equal(loadConfigDir(dir, {}).config.queueMinFree, 4 * 10 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
