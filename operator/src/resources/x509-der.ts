// The DER of the X.509 v3 certificates the operator issues for peer TLS (peer-tls.ts), with
// ECDSA-SHA256 signatures: only the few fields and extensions those certificates use
// (RFC 5280). Pure: bytes in, bytes out. The signature itself comes from node:crypto; OpenSSL
// (node:crypto's X509Certificate, node:tls) is the judge of the result in the tests.

/** ecdsa-with-SHA256 (RFC 5758 3.2): the AlgorithmIdentifier has no parameters. */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const ATTRIBUTE_OIDS = { CN: '2.5.4.3', O: '2.5.4.10' } as const;

export interface NameAttribute { type: keyof typeof ATTRIBUTE_OIDS; value: string }

export interface CertificateFields {
  /** Positive, minimally encoded: the first byte below 0x80 and not 0 (peer-tls.ts makes such). */
  serial: Buffer;
  issuer: NameAttribute[];
  subject: NameAttribute[];
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo, DER (KeyObject.export({ type: 'spki', format: 'der' })). */
  spki: Buffer;
  extensions: {
    /** A CA (may sign leaves, no intermediates) or a leaf for TLS server and client use. */
    ca: boolean;
    /** subjectAltName dNSNames (leaf). */
    dnsNames?: string[];
    subjectKeyId: Buffer;
    authorityKeyId?: Buffer;
  };
}

// ---- DER primitives (X.690)

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV: `tag` is the whole identifier octet (class, constructed bit, number < 31). */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const boolean = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const octetString = (b: Buffer): Buffer => tlv(0x04, b);
const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
/** A BIT STRING whose bits fill whole bytes (signatures). */
const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));
/** [n] EXPLICIT */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** A non-negative INTEGER from a small number or big-endian bytes, minimally encoded. */
export function integer(v: number | Buffer): Buffer {
  let b = v;
  if (typeof b === 'number') {
    const hex = b.toString(16);
    b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  }
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1] & 0x80) === 0) i++;
  b = b.subarray(i);
  if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isInteger(a) || a < 0)) throw new Error(`not an OID: ${dotted}`);
  const out: number[] = [];
  const base128 = (v: number): void => {
    const group = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) group.unshift((x & 0x7f) | 0x80);
    out.push(...group);
  };
  base128(arcs[0] * 40 + arcs[1]);
  for (const a of arcs.slice(2)) base128(a);
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Z. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

function name(attributes: NameAttribute[]): Buffer {
  return sequence(...attributes.map((a) => set(sequence(oid(ATTRIBUTE_OIDS[a.type]), utf8String(a.value)))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

/**
 * KeyUsage bits (RFC 5280 4.2.1.3: digitalSignature is bit 0, the high bit of the first byte),
 * as a DER BIT STRING: trailing zero bits dropped and counted as unused.
 */
export function keyUsage(bits: number[]): Buffer {
  const top = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(top / 8) + 1);
  for (const b of bits) bytes[Math.floor(b / 8)] |= 0x80 >> (b % 8);
  return bitString(bytes, 7 - (top % 8));
}

const KU_DIGITAL_SIGNATURE = 0;
const KU_KEY_CERT_SIGN = 5;
const KU_CRL_SIGN = 6;

function extensions(e: CertificateFields['extensions']): Buffer {
  const list: Buffer[] = [];
  // basicConstraints: cA TRUE with pathLenConstraint 0; a leaf's cA FALSE is the default, left out (DER).
  list.push(extension('2.5.29.19', true, e.ca ? sequence(boolean(true), integer(0)) : sequence()));
  list.push(extension('2.5.29.15', true, keyUsage(e.ca ? [KU_KEY_CERT_SIGN, KU_CRL_SIGN] : [KU_DIGITAL_SIGNATURE])));
  if (!e.ca) list.push(extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2')))); // serverAuth, clientAuth
  // subjectAltName dNSName: [2] IMPLICIT IA5String
  if (e.dnsNames?.length) list.push(extension('2.5.29.17', false, sequence(...e.dnsNames.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))))));
  list.push(extension('2.5.29.14', false, octetString(e.subjectKeyId)));
  // authorityKeyIdentifier keyIdentifier: [0] IMPLICIT OCTET STRING
  if (e.authorityKeyId) list.push(extension('2.5.29.35', false, sequence(tlv(0x80, e.authorityKeyId))));
  return explicit(3, sequence(...list));
}

const signatureAlgorithm = (): Buffer => sequence(oid(ECDSA_WITH_SHA256));

/** The TBSCertificate, the bytes that are signed. */
export function tbsCertificateDer(f: CertificateFields): Buffer {
  return sequence(
    explicit(0, integer(2)), // v3
    integer(f.serial),
    signatureAlgorithm(),
    name(f.issuer),
    sequence(time(f.notBefore), time(f.notAfter)),
    name(f.subject),
    f.spki,
    extensions(f.extensions),
  );
}

/** The Certificate: the TBSCertificate, its algorithm and the signature (DER ECDSA-Sig-Value, as node:crypto's sign() gives). */
export function certificateDer(tbs: Buffer, signature: Buffer): Buffer {
  return sequence(tbs, signatureAlgorithm(), bitString(signature));
}

export function derToPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
