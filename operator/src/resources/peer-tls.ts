// Secret <name>-peer-tls (BRIEF contract 4): a per-cluster CA and one leaf certificate for the
// name peers verify each other by (<name>-peers.<ns>.svc). Every node presents the same leaf
// to a peer and checks the peer's against the CA. Issued once when the Secret is created; the
// operator never reads it back.
//
// ECDSA P-256 keys, signed with ECDSA-SHA256, both by node:crypto (OpenSSL, native): a key
// pair costs well under a millisecond, where the RSA-2048 pairs and node-forge's pure-JS
// signing used before cost about a quarter of a CPU-second per cluster — at 1,000 MailClusters
// created together, minutes of the operator's CPU (bench:scale). node:crypto cannot issue
// X.509, so the certificates are encoded here (x509-der.ts, a small DER encoder of only the
// fields these certificates use, checked against OpenSSL in its tests) and signed by OpenSSL.
// The nodes' TLS (node:tls) takes EC keys as it takes RSA.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels } from './labels.ts';
import { peerTlsName, peerTlsSecretName } from './names.ts';
import { childMeta } from './owner.ts';
import { certificateDer, derToPem, tbsCertificateDer, type CertificateFields } from './x509-der.ts';

export interface PeerTlsMaterial {
  caCert: string;
  cert: string;
  key: string;
}

const CA_VALID_DAYS = 3650;
const LEAF_VALID_DAYS = 3650;

/** A positive 128-bit serial number (the high bit clear so DER keeps it positive, never a leading zero byte). */
function serial(): Buffer {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  b[0] |= 0x10;
  return b;
}

function validity(now: Date, days: number): { notBefore: Date; notAfter: Date } {
  // An hour back: a peer whose clock is a little behind still accepts it.
  return { notBefore: new Date(now.getTime() - 3600_000), notAfter: new Date(now.getTime() + days * 86_400_000) };
}

/** The SubjectPublicKeyInfo DER and its key identifier (SHA-1 of the key's bits, RFC 5280 4.2.1.2 method 1). */
function publicKeyInfo(key: KeyObject): { spki: Buffer; keyId: Buffer } {
  const spki = key.export({ type: 'spki', format: 'der' });
  // For P-256 the BIT STRING holding the point is the SPKI's last 65 bytes (uncompressed point).
  const point = spki.subarray(spki.length - 65);
  return { spki, keyId: createHash('sha1').update(point).digest() };
}

function signed(fields: CertificateFields, issuerKey: KeyObject): Buffer {
  const tbs = tbsCertificateDer(fields);
  return certificateDer(tbs, sign('sha256', tbs, issuerKey));
}

/** A fresh CA and a leaf for `dnsName` signed by it. */
export async function issuePeerTls(clusterName: string, dnsName: string, now = new Date()): Promise<PeerTlsMaterial> {
  const caKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leafKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caPublic = publicKeyInfo(caKeys.publicKey);
  const leafPublic = publicKeyInfo(leafKeys.publicKey);
  const caSubject = [{ type: 'CN' as const, value: `mailcluster ${clusterName} peer CA` }, { type: 'O' as const, value: 'mailcluster' }];
  const ca = signed({
    serial: serial(), issuer: caSubject, subject: caSubject, ...validity(now, CA_VALID_DAYS), spki: caPublic.spki,
    extensions: { ca: true, subjectKeyId: caPublic.keyId },
  }, caKeys.privateKey);
  const leaf = signed({
    serial: serial(), issuer: caSubject, subject: [{ type: 'CN', value: dnsName }], ...validity(now, LEAF_VALID_DAYS), spki: leafPublic.spki,
    // Server for the peer that connects, client should a node ever present it when handing off.
    extensions: { ca: false, dnsNames: [dnsName], subjectKeyId: leafPublic.keyId, authorityKeyId: caPublic.keyId },
  }, caKeys.privateKey);
  return {
    caCert: derToPem(ca, 'CERTIFICATE'),
    cert: derToPem(leaf, 'CERTIFICATE'),
    key: leafKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

export function buildPeerTlsSecret(cluster: MailCluster, material: PeerTlsMaterial) {
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: childMeta(cluster, peerTlsSecretName(cluster.metadata.name), clusterLabels(cluster.metadata.name)),
    data: { 'ca.crt': b64(material.caCert), 'tls.crt': b64(material.cert), 'tls.key': b64(material.key) },
  };
}

/** The name in the leaf (peer-tls-name) for a cluster. */
export const peerDnsName = (cluster: MailCluster): string => peerTlsName(cluster.metadata.name, cluster.metadata.namespace);
