// The DER encoder of the peer-TLS certificates (x509-der.ts): its primitives against X.690's
// own examples and a small decoder, and whole certificates as OpenSSL (node:crypto) reads and
// verifies them, for any cluster name. The TLS handshake itself is in security.test.ts.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fc from 'fast-check';
import { issuePeerTls } from '../../../operator/src/resources/peer-tls.ts';
import { integer, keyUsage, oid, time, tlv } from '../../../operator/src/resources/x509-der.ts';

/** One TLV back: tag, content (definite lengths only, as DER has). */
function readTlv(b: Buffer): { tag: number; content: Buffer; rest: Buffer } {
  const tag = b[0];
  let len = b[1];
  let off = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    assert.ok(n > 0 && n <= 4 && b[2] !== 0, 'minimal long-form length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i];
    assert.ok(len >= 0x80, 'long form only when the short one cannot say it');
    off = 2 + n;
  }
  return { tag, content: b.subarray(off, off + len), rest: b.subarray(off + len) };
}

describe('operator: X.509 DER for peer TLS', () => {
  it('encodes lengths in short and minimal long form', () => {
    assert.deepEqual([...tlv(0x04, Buffer.alloc(127)).subarray(0, 2)], [0x04, 0x7f]);
    assert.deepEqual([...tlv(0x04, Buffer.alloc(200)).subarray(0, 3)], [0x04, 0x81, 0xc8]);
    assert.deepEqual([...tlv(0x04, Buffer.alloc(300)).subarray(0, 4)], [0x04, 0x82, 0x01, 0x2c]);
    fc.assert(fc.property(fc.integer({ min: 0, max: 70_000 }), (n) => {
      const r = readTlv(tlv(0x30, Buffer.alloc(n, 1)));
      assert.equal(r.content.length, n);
      assert.equal(r.rest.length, 0);
    }));
  });

  it('encodes INTEGERs minimally and non-negative', () => {
    assert.deepEqual([...integer(0)], [0x02, 0x01, 0x00]);
    assert.deepEqual([...integer(2)], [0x02, 0x01, 0x02]);
    assert.deepEqual([...integer(128)], [0x02, 0x02, 0x00, 0x80]);
    assert.deepEqual([...integer(256)], [0x02, 0x02, 0x01, 0x00]);
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 24 }), (bytes) => {
      const b = Buffer.from(bytes);
      const { tag, content } = readTlv(integer(b));
      assert.equal(tag, 0x02);
      assert.equal(BigInt(`0x${content.toString('hex')}`), BigInt(`0x${b.toString('hex')}`));
      assert.equal(content[0] & 0x80, 0, 'never negative');
      if (content.length > 1) assert.ok(!(content[0] === 0 && (content[1] & 0x80) === 0), 'no needless leading zero');
    }));
  });

  it('encodes OBJECT IDENTIFIERs (X.690 8.19) and refuses what is not one', () => {
    assert.equal(oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
    assert.equal(oid('2.5.29.19').toString('hex'), '0603551d13');
    assert.equal(oid('1.3.6.1.5.5.7.3.1').toString('hex'), '06082b06010505070301');
    assert.throws(() => oid('1'), /not an OID/);
    assert.throws(() => oid('1.x.3'), /not an OID/);
  });

  it('writes UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280)', () => {
    assert.equal(time(new Date('2049-12-31T23:59:59.900Z')).toString('latin1'), '\x17\x0d491231235959Z');
    assert.equal(time(new Date('2050-01-01T00:00:00Z')).toString('latin1'), '\x18\x0f20500101000000Z');
  });

  it('writes KeyUsage as a DER BIT STRING (trailing zero bits unused)', () => {
    assert.equal(keyUsage([0]).toString('hex'), '03020780'); // digitalSignature
    assert.equal(keyUsage([5, 6]).toString('hex'), '03020106'); // keyCertSign, cRLSign
    assert.equal(keyUsage([8]).toString('hex'), '0303070080'); // decipherOnly
  });

  it('issues an EC P-256 CA and leaf that OpenSSL reads and verifies, for any cluster name', async function () {
    this.timeout(20_000);
    await fc.assert(fc.asyncProperty(
      fc.stringMatching(/^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/), fc.stringMatching(/^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/),
      async (name, ns) => {
        const dns = `${name}-peers.${ns}.svc`;
        const m = await issuePeerTls(name, dns, new Date('2026-01-01T00:00:00Z'));
        const ca = new X509Certificate(m.caCert);
        const leaf = new X509Certificate(m.cert);
        assert.equal(ca.ca, true);
        assert.equal(leaf.ca, false);
        assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey) && ca.verify(ca.publicKey));
        assert.equal(leaf.subject, `CN=${dns}`);
        assert.equal(ca.subject, `CN=mailcluster ${name} peer CA\nO=mailcluster`);
        assert.equal(leaf.subjectAltName, `DNS:${dns}`);
        assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
        assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
        assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
        assert.equal(new Date(leaf.validFrom).toISOString(), '2025-12-31T23:00:00.000Z');
        assert.ok(leaf.checkPrivateKey(createPrivateKey(m.key)), 'the key is the leaf\'s');
        assert.equal(ca.checkPrivateKey(createPrivateKey(m.key)), false);
      },
    ), { numRuns: 25 });
  });
});
