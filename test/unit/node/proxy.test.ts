import assert from 'node:assert/strict';
import { buildProxyV2, parseProxyHeader, startsLikeProxyHeader, V2_SIGNATURE } from '../../../node-image/src/proxy/parse.ts';

describe('PROXY protocol parser', () => {
  it('parses a v1 TCP4 line and reports where the stream starts', () => {
    const buf = Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 40001 25\r\nEHLO x\r\n');
    const r = parseProxyHeader(buf);
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual([r.version, r.command, r.source, r.destination], [1, 'proxy', { address: '203.0.113.7', port: 40001 }, { address: '10.0.0.1', port: 25 }]);
    assert.equal(buf.subarray(r.length).toString(), 'EHLO x\r\n');
  });

  it('parses v1 TCP6 and UNKNOWN; incomplete until CRLF; rejects bad lines', () => {
    const r6 = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'));
    assert.ok(r6.kind === 'ok' && r6.source?.address === '2001:db8::1');
    const ru = parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'));
    assert.ok(ru.kind === 'ok' && ru.command === 'local');
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4')).kind, 'incomplete');
    assert.equal(parseProxyHeader(Buffer.from('PRO')).kind, 'incomplete');
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n')).kind, 'invalid');
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 1 70000\r\n')).kind, 'invalid');
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n')).kind, 'invalid');
    assert.equal(parseProxyHeader(Buffer.from('PROXY ' + 'x'.repeat(120))).kind, 'invalid');
    assert.equal(parseProxyHeader(Buffer.from('EHLO client\r\n')).kind, 'invalid');
  });

  it('parses a v2 IPv4 header (as haproxy send-proxy-v2 writes it) with TLVs', () => {
    const head = buildProxyV2({ address: '198.51.100.9', port: 51234 }, { address: '127.41.0.1', port: 25 });
    // append a TLV (type 0x04 NOOP, length 3) by growing the length field
    const tlv = Buffer.from([0x04, 0x00, 0x03, 1, 2, 3]);
    const withTlv = Buffer.concat([head, tlv]);
    withTlv.writeUInt16BE(head.readUInt16BE(14) + tlv.length, 14);
    const stream = Buffer.concat([withTlv, Buffer.from('QUIT\r\n')]);
    const r = parseProxyHeader(stream);
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual([r.version, r.source, r.destination], [2, { address: '198.51.100.9', port: 51234 }, { address: '127.41.0.1', port: 25 }]);
    assert.equal(stream.subarray(r.length).toString(), 'QUIT\r\n');
    // every proper prefix is incomplete
    for (let i = 1; i < withTlv.length; i++) assert.equal(parseProxyHeader(withTlv.subarray(0, i)).kind, 'incomplete', `prefix ${i}`);
  });

  it('parses v2 IPv6 and LOCAL; rejects a bad version, command or family', () => {
    const h6 = buildProxyV2({ address: '2001:db8::7', port: 1000 }, { address: '::1', port: 25 });
    const r6 = parseProxyHeader(h6);
    assert.ok(r6.kind === 'ok' && r6.source?.address === '2001:db8::7' && r6.destination?.address === '::1');
    const local = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    const rl = parseProxyHeader(local);
    assert.ok(rl.kind === 'ok' && rl.command === 'local' && rl.length === 16);
    const badVersion = Buffer.from(local); badVersion[12] = 0x11;
    assert.equal(parseProxyHeader(badVersion).kind, 'invalid');
    const badCmd = Buffer.from(local); badCmd[12] = 0x2f;
    assert.equal(parseProxyHeader(badCmd).kind, 'invalid');
    const udp = buildProxyV2({ address: '1.2.3.4', port: 1 }, { address: '1.2.3.5', port: 2 }); udp[13] = 0x12;
    assert.equal(parseProxyHeader(udp).kind, 'invalid');
    const short = buildProxyV2({ address: '1.2.3.4', port: 1 }, { address: '1.2.3.5', port: 2 }).subarray(0, 16);
    short.writeUInt16BE(0, 14); short[13] = 0x11;
    assert.equal(parseProxyHeader(short).kind, 'invalid');
  });

  it('recognises the start of a header, to refuse it from untrusted clients', () => {
    assert.ok(startsLikeProxyHeader(Buffer.from('PROXY TCP4')));
    assert.ok(startsLikeProxyHeader(V2_SIGNATURE.subarray(0, 5)));
    assert.ok(!startsLikeProxyHeader(Buffer.from('EHLO x')));
  });
});
