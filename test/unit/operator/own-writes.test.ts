// The memory of the operator's own writes its cache has not shown yet (own-writes.ts): a write
// is held back only while the very content written is unseen, an informer event at that
// version (or a later one, or a delete) ends the wait, and nothing waits past the TTL.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { objectKey, OwnWrites, showsWrite, statusKey } from '../../../operator/src/controller/own-writes.ts';

describe('operator: own writes the cache has not shown yet', () => {
  it('matches resourceVersions exactly, or by number when both are numbers', () => {
    assert.equal(showsWrite('100', '100'), true);
    assert.equal(showsWrite('100', '101'), true);
    assert.equal(showsWrite('100', '99'), false);
    assert.equal(showsWrite('100', undefined), false);
    assert.equal(showsWrite('100', ''), false);
    assert.equal(showsWrite('abc', 'abc'), true);
    assert.equal(showsWrite('abc', 'abd'), false, 'opaque versions: only the same one');
    assert.equal(showsWrite('100', 'x101'), false);
    assert.equal(showsWrite('9007199254740993', '9007199254740992'), false, 'compared as integers, not doubles');
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 10n ** 18n }), fc.bigInt({ min: 0n, max: 10n ** 18n }), (w, o) => {
      assert.equal(showsWrite(String(w), String(o)), o >= w);
    }));
  });

  it('holds back the same content until the cache shows the write, not other content', () => {
    const own = new OwnWrites(30_000);
    const k = objectKey('ConfigMap', 'ns', 'mc-0-config');
    own.wrote(k, 'h1', '100', 1000);
    assert.ok(own.unseen(k, 1500, 'h1'));
    assert.equal(own.unseen(k, 1500, 'h2'), undefined, 'new content is written at once');
    own.observed(k, '99', false);
    assert.ok(own.unseen(k, 1600, 'h1'), 'an older event does not show the write');
    own.observed(k, '100', false);
    assert.equal(own.unseen(k, 1700, 'h1'), undefined);
    assert.equal(own.size, 0);
  });

  it('lets a delete end the wait (a deleted pod comes back at once)', () => {
    const own = new OwnWrites();
    const k = objectKey('Pod', 'ns', 'mc-0');
    own.wrote(k, 'h', '100', 0);
    own.observed(k, '50', true);
    assert.equal(own.unseen(k, 1, 'h'), undefined);
  });

  it('never waits past the TTL, and says how long is left', () => {
    const own = new OwnWrites(10_000);
    const k = statusKey('ns', 'mc');
    own.wrote(k, '', '7', 0);
    const p = own.unseen(k, 4000);
    assert.ok(p);
    assert.equal(own.remainingMs(p, 4000), 6000);
    assert.equal(own.unseen(k, 10_000), undefined);
    assert.equal(own.size, 0, 'expired entries are dropped');
  });

  it('remembers nothing when the cache already shows the write, or no version came back', () => {
    const own = new OwnWrites();
    own.wrote('a', 'h', '100', 0, '100');
    own.wrote('b', 'h', '100', 0, '101');
    own.wrote('c', 'h', undefined, 0);
    assert.equal(own.size, 0);
    own.wrote('d', 'h', '100', 0, '99');
    assert.equal(own.size, 1);
    own.forget((k) => k === 'd');
    assert.equal(own.size, 0);
  });

  it('model: an entry is unseen exactly while no event at or after its version came, within the TTL', () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('write' as const), rv: fc.integer({ min: 1, max: 50 }), hash: fc.constantFrom('a', 'b') }),
      fc.record({ t: fc.constant('event' as const), rv: fc.integer({ min: 1, max: 50 }), deleted: fc.boolean() }),
      fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 4000 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const ttl = 10_000;
      const own = new OwnWrites(ttl);
      let now = 0;
      let model: { rv: number; hash: string; at: number } | undefined;
      for (const o of ops) {
        if (o.t === 'write') { own.wrote('k', o.hash, String(o.rv), now); model = { rv: o.rv, hash: o.hash, at: now }; }
        if (o.t === 'event') { own.observed('k', String(o.rv), o.deleted); if (model && (o.deleted || o.rv >= model.rv)) model = undefined; }
        if (o.t === 'tick') now += o.ms;
        const live = model && now - model.at < ttl ? model : undefined;
        for (const h of ['a', 'b']) assert.equal(Boolean(own.unseen('k', now, h)), Boolean(live && live.hash === h));
        if (!live) model = undefined;
      }
    }));
  });
});
