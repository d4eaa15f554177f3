// Secret <name>-peer-tls (BRIEF contract 4): a per-cluster CA and one leaf certificate for the
// name peers verify each other by (<name>-peers.<ns>.svc). Every node presents the same leaf
// to a peer and checks the peer's against the CA. node:crypto cannot issue X.509, so the
// certificates are built with node-forge (no dependencies, no native code); the RSA keys come
// from node:crypto. Issued once when the Secret is created; the operator never reads it back.
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { clusterLabels } from './labels.ts';
import { peerTlsName, peerTlsSecretName } from './names.ts';
import { childMeta } from './owner.ts';

export interface PeerTlsMaterial {
  caCert: string;
  cert: string;
  key: string;
}

const CA_VALID_DAYS = 3650;
const LEAF_VALID_DAYS = 3650;

const generateRsa = promisify(generateKeyPair);

/** An RSA 2048 key pair, generated off the event loop (libuv's thread pool). */
async function rsaKeyPair(): Promise<{ publicKey: forge.pki.rsa.PublicKey; privateKey: forge.pki.rsa.PrivateKey; privatePem: string }> {
  const { privateKey } = await generateRsa('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const priv = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return { privateKey: priv, publicKey: forge.pki.setRsaPublicKey(priv.n, priv.e), privatePem: privateKey };
}

/** A positive 128-bit serial number, as hex (the high bit clear so DER keeps it positive). */
function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  b[0] |= 0x10;
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate, now: Date, days: number): void {
  // An hour back: a peer whose clock is a little behind still accepts it.
  cert.validity.notBefore = new Date(now.getTime() - 3600_000);
  cert.validity.notAfter = new Date(now.getTime() + days * 86_400_000);
}

/** A fresh CA and a leaf for `dnsName` signed by it. */
export async function issuePeerTls(clusterName: string, dnsName: string, now = new Date()): Promise<PeerTlsMaterial> {
  const [caKeys, leafKeys] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);
  const ca = forge.pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serial();
  validity(ca, now, CA_VALID_DAYS);
  const caSubject = [{ name: 'commonName', value: `mailcluster ${clusterName} peer CA` }, { name: 'organizationName', value: 'mailcluster' }];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const leaf = forge.pki.createCertificate();
  leaf.publicKey = leafKeys.publicKey;
  leaf.serialNumber = serial();
  validity(leaf, now, LEAF_VALID_DAYS);
  leaf.setSubject([{ name: 'commonName', value: dnsName }]);
  leaf.setIssuer(caSubject);
  leaf.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    // Server for the peer that connects, client should a node ever present it when handing off.
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: dnsName }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  leaf.sign(caKeys.privateKey, forge.md.sha256.create());
  return { caCert: forge.pki.certificateToPem(ca), cert: forge.pki.certificateToPem(leaf), key: leafKeys.privatePem };
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
