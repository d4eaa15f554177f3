// Pure decisions of the queue operations (issue 14): request parsing, filtering, the
// per-domain summary, the mailq layout, batch status, and the contract-1 credential check.
// Property tests (fast-check) over random queues and filters.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { QueuedMessageInfo } from '../../../node-image/src/delivery/queue.ts';
import {
  BadRequest, batchStatus, filterMessages, formatAge, formatMailq, matchesFilter, messageView, parseListQuery, parseOperationBody,
  selectIds, summarizeQueue,
} from '../../../node-image/src/admin/queue-view.ts';
import { decideAdminAuth as checkAdminCredential } from '../../../node-image/src/admin/auth.ts';

const NOW = 1_800_000_000_000;

function msg(p: Partial<QueuedMessageInfo> & { id: string }): QueuedMessageInfo {
  return { sender: 's@x.test', recipients: ['a@cust.test'], size: 100, receivedAt: NOW - 60_000, attempts: 1, nextAttempt: NOW + 60_000, inFlight: false, held: false, ...p };
}

const domains = ['cust.test', 'sub.cust.test', 'other.test', 'x.example'];
const arbMessage = fc.record({
  id: fc.stringMatching(/^[A-Z0-9]{6,10}$/),
  sender: fc.constantFrom('', 's@x.test', 'T@Other.test'),
  recipients: fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.constantFrom(...domains)).map(([l, d]) => `${l}@${d}`), { minLength: 1, maxLength: 4 }),
  size: fc.integer({ min: 1, max: 1e6 }),
  receivedAt: fc.integer({ min: NOW - 10 * 86400_000, max: NOW }),
  attempts: fc.integer({ min: 0, max: 20 }),
  nextAttempt: fc.integer({ min: NOW - 1000, max: NOW + 86400_000 }),
  inFlight: fc.boolean(),
  held: fc.boolean(),
}).map((m) => m as QueuedMessageInfo);
const arbQueue = fc.uniqueArray(arbMessage, { selector: (m) => m.id, maxLength: 30 });
const arbFilter = fc.record({
  domain: fc.option(fc.constantFrom('cust.test', 'other.test', 'example'), { nil: undefined }),
  subdomains: fc.option(fc.boolean(), { nil: undefined }),
  sender: fc.option(fc.constantFrom('', 's@x.test', 't@other.test'), { nil: undefined }),
  held: fc.option(fc.boolean(), { nil: undefined }),
  minAgeSeconds: fc.option(fc.integer({ min: 0, max: 86400 }), { nil: undefined }),
}, { requiredKeys: [] });

describe('queue view (pure)', () => {
  it('summary: states partition the queue; per-domain rows count every open recipient once', () => {
    fc.assert(fc.property(arbQueue, (list) => {
      const s = summarizeQueue(list, NOW);
      assert.equal(s.total, list.length);
      const queued = list.filter((m) => !m.held && !m.inFlight && m.attempts === 0).length;
      assert.equal(s.held + s.deferred + s.active + queued, s.total);
      assert.equal(s.domains.reduce((n, d) => n + d.recipients, 0), list.reduce((n, m) => n + m.recipients.length, 0));
      for (const d of s.domains) {
        assert.ok(d.messages <= d.recipients && d.held <= d.messages && d.deferred <= d.messages);
        assert.equal(d.messages, list.filter((m) => m.recipients.some((r) => r.endsWith('@' + d.domain))).length);
      }
      assert.equal(s.oldestSeconds, list.length ? Math.floor((NOW - Math.min(...list.map((m) => m.receivedAt))) / 1000) : null);
    }));
  });

  it('filter: every selected message matches, none left out matches; oldest first; limit cuts', () => {
    fc.assert(fc.property(arbQueue, arbFilter, fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }), (list, f, limit) => {
      const all = filterMessages(list, f, NOW);
      for (const m of all) assert.ok(matchesFilter(m, f, NOW));
      for (const m of list) if (!all.includes(m)) assert.ok(!matchesFilter(m, f, NOW));
      for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].receivedAt <= all[i].receivedAt);
      const cut = filterMessages(list, { ...f, limit }, NOW);
      assert.deepEqual(cut, limit === undefined ? all : all.slice(0, limit));
      // a batch with all:true selects exactly the filtered ids
      assert.deepEqual(selectIds(list, { all: true, filter: f }, NOW), all.map((m) => m.id));
    }));
  });

  it('filter semantics: domain exact or with subdomains (@domain), sender case-insensitive and <> for the null sender, held', () => {
    const list = [msg({ id: 'A', recipients: ['a@cust.test'] }), msg({ id: 'B', recipients: ['b@sub.cust.test'], sender: '' }), msg({ id: 'C', held: true, sender: 'Big@X.test' })];
    assert.deepEqual(filterMessages(list, parseListQuery(new URLSearchParams('domain=cust.test')), NOW).map((m) => m.id), ['A', 'C']);
    assert.deepEqual(filterMessages(list, parseListQuery(new URLSearchParams('domain=@cust.test')), NOW).map((m) => m.id), ['A', 'B', 'C']);
    assert.deepEqual(filterMessages(list, parseListQuery(new URLSearchParams('sender=<>')), NOW).map((m) => m.id), ['B']);
    assert.deepEqual(filterMessages(list, parseListQuery(new URLSearchParams('sender=big@x.test')), NOW).map((m) => m.id), ['C']);
    assert.deepEqual(filterMessages(list, parseListQuery(new URLSearchParams('held=true')), NOW).map((m) => m.id), ['C']);
  });

  it('bad requests are refused with a clear message, never widened to "everything"', () => {
    for (const q of ['bogus=1', 'limit=0', 'limit=x', 'held=maybe', 'domain=a b', 'domain=-x', 'minAgeSeconds=-1']) {
      assert.throws(() => parseListQuery(new URLSearchParams(q)), BadRequest, q);
    }
    const body = (v: unknown) => Buffer.from(JSON.stringify(v));
    for (const b of [{}, { ids: [] }, { ids: ['a/b'] }, { ids: 'X' }, { all: false }, { ids: ['X'], all: true }, { all: true, colour: 1 }, { ids: ['X'], dsn: 'yes' }]) {
      assert.throws(() => parseOperationBody(body(b), true), BadRequest, JSON.stringify(b));
    }
    assert.throws(() => parseOperationBody(Buffer.from('{'), true), BadRequest);
    assert.throws(() => parseOperationBody(body({ ids: ['X'], dsn: true }), false), BadRequest, 'dsn only for delete');
    assert.deepEqual(parseOperationBody(body({ ids: ['X', 'X', 'Y'], dsn: true }), true), { selection: { ids: ['X', 'Y'] }, dsn: true });
    assert.deepEqual(parseOperationBody(body({ all: true, domain: '@Cust.Test' }), false).selection, { all: true, filter: { domain: 'cust.test', subdomains: true } });
  });

  it('views: held messages have no next attempt; states; the postqueue -p layout marks held (!) and active (*)', () => {
    const held = messageView(msg({ id: 'H1', held: true, lastError: 'mx[1.2.3.4]: connection refused' }), NOW);
    assert.equal(held.state, 'held');
    assert.equal(held.nextAttempt, null);
    const active = messageView(msg({ id: 'A1', inFlight: true }), NOW);
    assert.equal(active.state, 'active');
    assert.equal(messageView(msg({ id: 'Q1', attempts: 0 }), NOW).state, 'queued');
    const text = formatMailq([held, active]);
    assert.match(text, /^H1!\s+100 /m);
    assert.match(text, /^A1\*\s+100 /m);
    assert.match(text, /\(mx\[1\.2\.3\.4\]: connection refused\)/);
    assert.match(text, /\(on hold\)/);
    assert.match(text, /-- 1 Kbytes in 2 Requests\.\n$/);
    assert.equal(formatMailq([]), 'Mail queue is empty\n');
    assert.deepEqual([formatAge(5), formatAge(65), formatAge(3 * 3600 + 120), formatAge(2 * 86400 + 3600), formatAge(null)], ['5s', '1m5s', '3h2m', '2d1h', '-']);
  });

  it('batch status: 200 all ok, 404 only unknown ids, 409 otherwise', () => {
    assert.equal(batchStatus([]), 200);
    assert.equal(batchStatus([{ id: 'a', ok: true }]), 200);
    assert.equal(batchStatus([{ id: 'a', ok: false, code: 'not-found' }]), 404);
    assert.equal(batchStatus([{ id: 'a', ok: true }, { id: 'b', ok: false, code: 'not-found' }]), 409);
    assert.equal(batchStatus([{ id: 'a', ok: false, code: 'in-flight' }]), 409);
  });
});

describe('admin credential (contract 1, pure)', () => {
  const token = 's3cret-token';
  const digest = createHash('sha256').update(token).digest('hex');
  it('403 without a configured digest, 401 without or with a wrong token, ok with the right one', () => {
    assert.deepEqual(checkAdminCredential(`Bearer ${token}`, null).ok, false);
    assert.equal((checkAdminCredential(`Bearer ${token}`, null) as { status: number }).status, 403);
    for (const h of [undefined, '', 'Bearer', `Basic ${token}`, `Bearer ${token}x`, `Bearer ${token} extra`, token]) {
      const v = checkAdminCredential(h, digest);
      assert.equal(v.ok, false, String(h));
      assert.equal((v as { status: number }).status, 401);
    }
    assert.equal(checkAdminCredential(`Bearer ${token}`, digest).ok, true);
    assert.equal(checkAdminCredential(`bearer ${token}`, digest.toUpperCase()).ok, true);
  });
  it('random tokens never pass against another token\'s digest', () => {
    fc.assert(fc.property(fc.string({ minLength: 1 }).filter((s) => !/\s/.test(s) && s !== token), (t) => {
      assert.equal(checkAdminCredential(`Bearer ${t}`, digest).ok, false);
    }));
  });
});
