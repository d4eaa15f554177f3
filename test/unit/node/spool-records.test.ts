import assert from 'node:assert/strict';
import { decodeSegment, encodeDone, encodeMessage, encodeUpdate } from '../../../node-image/src/spool/records.ts';
import type { MessageMeta } from '../../../node-image/src/spool/records.ts';
import { countReceivedHeaders, receivedHeader, relayVerdict } from '../../../node-image/src/smtp/policy.ts';
import { buildDsn, headerSection, statusFromDiagnostic } from '../../../node-image/src/delivery/dsn.ts';

const meta = (id: string): MessageMeta => ({ id, from: 'a@x.test', rcpts: [{ address: 'b@y.test', status: 'pending' }], receivedAt: 1, attempts: 0, nextAttempt: 1, size: 5 });

describe('spool record format', () => {
  it('round-trips message, update and done records and locates the content', () => {
    const m = encodeMessage(meta('M1'), Buffer.from('hello'));
    const buf = Buffer.concat([m.record, encodeUpdate({ id: 'M1', rcpts: [{ address: 'b@y.test', status: 'deferred', error: '451 later' }], attempts: 1, nextAttempt: 9 }), encodeDone('M1')]);
    const { records, validLength, error } = decodeSegment(buf);
    assert.equal(error, undefined);
    assert.equal(validLength, buf.length);
    assert.deepEqual(records.map((r) => r.type), ['message', 'update', 'done']);
    const r0 = records[0];
    assert.ok(r0.type === 'message');
    assert.equal(buf.subarray(r0.contentOffset, r0.contentOffset + r0.contentLength).toString(), 'hello');
    assert.equal(r0.contentOffset, m.contentOffset);
  });

  it('stops at a torn or corrupt tail and reports the valid length', () => {
    const a = encodeMessage(meta('A'), Buffer.from('first')).record;
    const b = encodeMessage(meta('B'), Buffer.from('second')).record;
    for (let cut = 1; cut < b.length; cut += 7) {
      const { records, validLength, error } = decodeSegment(Buffer.concat([a, b.subarray(0, cut)]));
      assert.equal(records.length, 1);
      assert.equal(validLength, a.length);
      assert.ok(error);
    }
    const flipped = Buffer.concat([a, b]);
    flipped[flipped.length - 2] ^= 0xff;
    assert.equal(decodeSegment(flipped).error, 'checksum mismatch');
    assert.equal(decodeSegment(Buffer.concat([a, Buffer.alloc(40)])).error, 'bad magic');
  });
});

describe('inbound policy', () => {
  const policy = { relayDomains: new Set(['dest.test']), isRelayNetwork: (ip: string) => ip.startsWith('10.'), isPeer: (ip: string) => ip === '192.0.2.7' };
  it('relay matrix', () => {
    assert.deepEqual(relayVerdict('u@Dest.Test', '203.0.113.1', false, policy), { ok: true, why: 'relay-domain' });
    assert.deepEqual(relayVerdict('u@other.test', '203.0.113.1', false, policy), { ok: false });
    assert.deepEqual(relayVerdict('u@other.test', '10.1.1.1', false, policy), { ok: true, why: 'relay-network' });
    assert.deepEqual(relayVerdict('u@other.test', '203.0.113.1', true, policy), { ok: true, why: 'authenticated' });
    assert.deepEqual(relayVerdict('u@other.test', '192.0.2.7', false, policy), { ok: true, why: 'peer' });
  });

  it('counts Received headers in the header section only', () => {
    const msg = Buffer.from('Received: a\r\nreceived: b\r\n\tcontinued\r\nSubject: x\r\n\r\nReceived: in the body\r\n');
    assert.equal(countReceivedHeaders(msg), 2);
    assert.equal(countReceivedHeaders(Buffer.from('Subject: x\n\nReceived: y\n')), 0);
  });

  it('writes a Received header', () => {
    const h = receivedHeader({ helo: 'client.test', clientIp: '192.0.2.1', hostname: 'n.test', protocol: 'ESMTPS', id: 'Q1', recipient: 'u@d.test', date: new Date(0) });
    assert.equal(h, 'Received: from client.test ([192.0.2.1])\r\n\tby n.test (mailcluster) with ESMTPS id Q1\r\n\tfor <u@d.test>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n');
  });

  it('builds a DSN with the status from the diagnostic and the original headers', () => {
    const dsn = buildDsn({ reportingMta: 'n.test', to: 'a@x.test', originalId: 'Q1', arrivalDate: new Date(0), originalHeaders: headerSection(Buffer.from('Subject: hi\r\n\r\nbody')),
      failed: [{ address: 'b@y.test', status: statusFromDiagnostic('550 5.1.1 no such user', true), diagnostic: '550 5.1.1 no such user' }] }).toString();
    assert.match(dsn, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(dsn, /Status: 5\.1\.1/);
    assert.match(dsn, /Subject: hi/);
    assert.doesNotMatch(dsn, /body/);
    assert.equal(statusFromDiagnostic('connection refused', true), '5.0.0');
  });
});
