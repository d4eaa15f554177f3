// The control plane's certificates and keys, made with the openssl CLI (Node's crypto makes
// keys but cannot sign X.509 certificates). EC P-256 keys: quick to make, accepted by every
// component. Everything lives in one directory and is reused when present, so a restarted
// control plane keeps its CA and every kubeconfig already handed out stays valid.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One certificate to issue. Pure data: what openssl is asked for. */
export interface CertificateSpec {
  commonName: string;
  /** Subject O= entries: Kubernetes reads them as the client's groups. */
  organizations?: string[];
  /** A CA certificate (self-signed when `issuer` is absent). */
  isCA?: boolean;
  usage?: Array<'serverAuth' | 'clientAuth'>;
  dnsNames?: string[];
  ipAddresses?: string[];
}

/** The openssl config (`-config` for the request, `-extfile` for signing) for one certificate. */
export function renderOpenSslConfig(spec: CertificateSpec): string {
  const escape = (v: string) => v.replace(/([\\"])/g, '\\$1');
  const lines = ['[req]', 'distinguished_name = dn', 'prompt = no', 'utf8 = yes', '', '[dn]'];
  // Indexed keys keep several O= entries apart (openssl reads "N.O" as another O).
  (spec.organizations ?? []).forEach((o, i) => lines.push(`${i}.O = ${escape(o)}`));
  lines.push(`CN = ${escape(spec.commonName)}`, '', '[v3]');
  if (spec.isCA) {
    lines.push('basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign,digitalSignature', 'subjectKeyIdentifier = hash');
  } else {
    lines.push('basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment');
    if (spec.usage?.length) lines.push(`extendedKeyUsage = ${spec.usage.join(',')}`);
    lines.push('authorityKeyIdentifier = keyid');
    const sans = [...(spec.dnsNames ?? []).map((d) => `DNS:${d}`), ...(spec.ipAddresses ?? []).map((ip) => `IP:${ip}`)];
    if (sans.length) lines.push(`subjectAltName = ${sans.join(',')}`);
  }
  return lines.join('\n') + '\n';
}

const VALID_DAYS = '3650';

function writeKey(path: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('the openssl command is needed to make the control plane certificates (apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString() ?? String(err)}`);
  }
}

/** Issues `<dir>/<name>.crt` and `.key`, signed by `<dir>/<issuer>.crt` (self-signed without issuer). */
export function issueCertificate(dir: string, name: string, spec: CertificateSpec, issuer?: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const config = join(dir, `${name}.cnf`);
  writeFileSync(config, renderOpenSslConfig(spec));
  writeKey(keyFile);
  const serial = `0x${randomBytes(16).toString('hex')}`;
  if (!issuer) {
    openssl(['req', '-x509', '-new', '-key', keyFile, '-config', config, '-extensions', 'v3', '-days', VALID_DAYS, '-sha256', '-set_serial', serial, '-out', certFile]);
  } else {
    const csr = join(dir, `${name}.csr`);
    openssl(['req', '-new', '-key', keyFile, '-config', config, '-out', csr]);
    openssl([
      'x509', '-req', '-in', csr, '-CA', join(dir, `${issuer}.crt`), '-CAkey', join(dir, `${issuer}.key`),
      '-set_serial', serial, '-days', VALID_DAYS, '-sha256', '-extfile', config, '-extensions', 'v3', '-out', certFile,
    ]);
    rmSync(csr, { force: true });
  }
  rmSync(config, { force: true });
  return { certFile, keyFile };
}

/** Paths of everything the control plane's components are given. */
export interface ControlPlanePki {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  frontProxyCaCert: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
  /** Service-account token signing key (private) and its public key. */
  serviceAccountKey: string;
  serviceAccountPub: string;
  adminCert: string;
  adminKey: string;
  controllerManagerCert: string;
  controllerManagerKey: string;
}

export function pkiPaths(dir: string): ControlPlanePki {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    apiserverCert: join(dir, 'apiserver.crt'),
    apiserverKey: join(dir, 'apiserver.key'),
    frontProxyCaCert: join(dir, 'front-proxy-ca.crt'),
    frontProxyClientCert: join(dir, 'front-proxy-client.crt'),
    frontProxyClientKey: join(dir, 'front-proxy-client.key'),
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPub: join(dir, 'sa.pub'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    controllerManagerCert: join(dir, 'kube-controller-manager.crt'),
    controllerManagerKey: join(dir, 'kube-controller-manager.key'),
  };
}

/** The API server's names: loopback, and the in-cluster names of the `kubernetes` Service. */
export function apiserverCertificateSpec(serviceIP: string): CertificateSpec {
  return {
    commonName: 'kube-apiserver',
    usage: ['serverAuth'],
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    ipAddresses: ['127.0.0.1', '::1', serviceIP],
  };
}

/**
 * Makes the control plane's PKI in dir, or reuses it when it is complete and still valid
 * (a marker file is written last, so a half-made PKI is made again).
 */
export function ensurePki(dir: string, serviceIP: string): ControlPlanePki {
  const paths = pkiPaths(dir);
  const marker = join(dir, 'complete');
  if (existsSync(marker) && stillValid(paths.caCert) && stillValid(paths.apiserverCert)) return paths;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  issueCertificate(dir, 'ca', { commonName: 'mailcluster-local-ca', isCA: true });
  issueCertificate(dir, 'apiserver', apiserverCertificateSpec(serviceIP), 'ca');
  issueCertificate(dir, 'front-proxy-ca', { commonName: 'mailcluster-local-front-proxy-ca', isCA: true });
  issueCertificate(dir, 'front-proxy-client', { commonName: 'front-proxy-client', usage: ['clientAuth'] }, 'front-proxy-ca');
  issueCertificate(dir, 'admin', { commonName: 'kubernetes-admin', organizations: ['system:masters'], usage: ['clientAuth'] }, 'ca');
  issueCertificate(dir, 'kube-controller-manager', { commonName: 'system:kube-controller-manager', usage: ['clientAuth'] }, 'ca');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(paths.serviceAccountKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(paths.serviceAccountPub, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(marker, new Date().toISOString() + '\n');
  return paths;
}

function stillValid(certFile: string): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    // Renew well before expiry rather than fail in the middle of a run.
    return Date.parse(cert.validTo) - Date.now() > 30 * 24 * 3600 * 1000;
  } catch {
    return false;
  }
}

/** Issues a client certificate for `user` (CN) in `groups` (O), signed by the cluster CA. */
export function issueClientCertificate(pki: ControlPlanePki, name: string, user: string, groups: string[] = []): { certFile: string; keyFile: string } {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`bad credential name ${JSON.stringify(name)}: letters, digits, '.', '_', '-'`);
  // A prefix keeps these apart from the control plane's own files (ca, admin, ...).
  return issueCertificate(pki.dir, `client-${name}`, { commonName: user, organizations: groups, usage: ['clientAuth'] }, 'ca');
}
