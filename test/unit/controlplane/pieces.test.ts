// The control plane's pure pieces (flags, cache key, certificates, version pins). They need
// no server; they sit here with the control plane's e2e suite (its assigned folder).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlPlaneCacheKey, defaultCacheRoot, ensureControlPlaneBinaries, findGo } from '../../../local/src/controlplane/build.ts';
import { apiServerArgs, controllerManagerArgs, etcdArgs, firstServiceIP } from '../../../local/src/controlplane/flags.ts';
import { renderKubeconfig } from '../../../local/src/controlplane/kubeconfig.ts';
import { ensurePki, issueClientCertificate, pkiPaths, renderOpenSslConfig } from '../../../local/src/controlplane/pki.ts';
import { ETCD_VERSION, KUBERNETES_VERSION, kubernetesLdflags } from '../../../local/src/controlplane/versions.ts';
import { load } from 'js-yaml';

const goDir = new URL('../../../local/go/', import.meta.url);

describe('control plane pieces', () => {
  it('pins the versions that local/go/go.mod and local/go/etcd/go.mod require', () => {
    const kube = readFileSync(new URL('go.mod', goDir), 'utf8');
    assert.match(kube, new RegExp(`^require k8s\\.io/kubernetes ${KUBERNETES_VERSION.replace(/\./g, '\\.')}( // indirect)?$`, 'm'));
    const staging = `v0.${KUBERNETES_VERSION.slice(3)}`;
    const replaced = [...kube.matchAll(/^\s*(k8s\.io\/\S+) => (k8s\.io\/\S+) (\S+)$/gm)];
    assert.ok(replaced.length >= 25, 'every staging module is replaced');
    for (const [, from, to, version] of replaced) {
      assert.equal(from, to);
      assert.equal(version, staging, `${from} is pinned at ${staging}`);
    }
    const etcd = readFileSync(new URL('etcd/go.mod', goDir), 'utf8');
    assert.match(etcd, new RegExp(`^require go\\.etcd\\.io/etcd/server/v3 ${ETCD_VERSION.replace(/\./g, '\\.')}$`, 'm'));
  });

  it('stamps the release into the Kubernetes binaries', () => {
    const flags = kubernetesLdflags('v1.36.3');
    assert.match(flags, /^-s -w /);
    assert.match(flags, /-X k8s\.io\/component-base\/version\.gitVersion=v1\.36\.3/);
    assert.match(flags, /-X k8s\.io\/client-go\/pkg\/version\.gitMinor=36/);
    assert.throws(() => kubernetesLdflags('1.36'), /not a Kubernetes release/);
  });

  it('keys the binary cache by versions and every build input', () => {
    const files = { 'go.mod': 'a', 'go.sum': 'b' };
    const key = controlPlaneCacheKey({ files, platform: 'linux-x64' });
    assert.match(key, new RegExp(`^kubernetes-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-[0-9a-f]{16}$`));
    assert.equal(controlPlaneCacheKey({ files: { 'go.sum': 'b', 'go.mod': 'a' }, platform: 'linux-x64' }), key);
    assert.notEqual(controlPlaneCacheKey({ files: { 'go.mod': 'a', 'go.sum': 'c' }, platform: 'linux-x64' }), key);
    assert.notEqual(controlPlaneCacheKey({ files, platform: 'linux-arm64' }), key);
    assert.equal(defaultCacheRoot({ XDG_CACHE_HOME: '/x' }), '/x/mailcluster/controlplane');
    assert.equal(defaultCacheRoot({ HOME: '/home/u' }), '/home/u/.cache/mailcluster/controlplane');
  });

  it('refuses an override directory without the four programs, naming what is missing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'mailcluster-assets-'));
    try {
      await assert.rejects(ensureControlPlaneBinaries({ env: { MAILCLUSTER_CONTROLPLANE_ASSETS: empty } }), /lacks executable etcd, kube-apiserver, kube-controller-manager, kubectl/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('says how to install Go when it is missing', async () => {
    assert.throws(() => findGo({ PATH: '/nonexistent' }, undefined, []), /Go \(1\.26 or newer\) is needed[\s\S]*\/usr\/local\/go[\s\S]*MAILCLUSTER_CONTROLPLANE_ASSETS/);
    // An explicit go that does not work is an error, not a reason to look elsewhere.
    const cacheRoot = mkdtempSync(join(tmpdir(), 'mailcluster-nogo-'));
    try {
      await assert.rejects(
        ensureControlPlaneBinaries({ cacheRoot, env: { HOME: cacheRoot }, go: '/nonexistent/go', log: () => {} }),
        /\/nonexistent\/go is not a working go command[\s\S]*Go \(1\.26 or newer\) is needed/,
      );
    } finally {
      rmSync(cacheRoot, { recursive: true, force: true });
    }
  });

  it('builds the three command lines', () => {
    const pki = pkiPaths('/d/pki');
    const etcd = etcdArgs({ dataDir: '/d/etcd', clientPort: 1, peerPort: 2, unsafeNoFsync: true });
    assert.ok(etcd.includes('--listen-client-urls=http://127.0.0.1:1'));
    assert.ok(etcd.includes('--initial-cluster=local=http://127.0.0.1:2'));
    assert.ok(etcd.includes('--unsafe-no-fsync'));
    const api = apiServerArgs({ pki, port: 6443, etcdUrl: 'http://127.0.0.1:1', serviceClusterIPRange: '10.0.0.0/16', certDir: '/d/c' });
    for (const flag of ['--bind-address=127.0.0.1', '--secure-port=6443', '--authorization-mode=Node,RBAC', '--etcd-servers=http://127.0.0.1:1', '--service-account-signing-key-file=/d/pki/sa.key', '--service-account-key-file=/d/pki/sa.pub', '--client-ca-file=/d/pki/ca.crt']) {
      assert.ok(api.includes(flag), flag);
    }
    assert.ok(api.some((a) => a.startsWith('--service-account-issuer=https://')));
    const cm = controllerManagerArgs({ pki, kubeconfig: '/d/cm.kubeconfig', port: 7, certDir: '/d/cmc', serviceClusterIPRange: '10.0.0.0/16' });
    for (const flag of ['--leader-elect=false', '--controllers=*', '--kubeconfig=/d/cm.kubeconfig', '--service-account-private-key-file=/d/pki/sa.key', '--root-ca-file=/d/pki/ca.crt', '--secure-port=7']) {
      assert.ok(cm.includes(flag), flag);
    }
  });

  it('finds the kubernetes Service IP of a range', () => {
    assert.equal(firstServiceIP('10.0.0.0/16'), '10.0.0.1');
    assert.equal(firstServiceIP('10.96.7.9/12'), '10.96.0.1');
    assert.throws(() => firstServiceIP('fd00::/108'), /IPv4 CIDR/);
    assert.throws(() => firstServiceIP('10.0.0.0/31'), /prefix/);
  });

  it('renders openssl configs with groups and names', () => {
    const text = renderOpenSslConfig({ commonName: 'system:node:a', organizations: ['system:nodes', 'x'], usage: ['clientAuth'], dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    assert.match(text, /^0\.O = system:nodes$/m);
    assert.match(text, /^1\.O = x$/m);
    assert.match(text, /^CN = system:node:a$/m);
    assert.match(text, /^extendedKeyUsage = clientAuth$/m);
    assert.match(text, /^subjectAltName = DNS:localhost,IP:127\.0\.0\.1$/m);
    assert.match(renderOpenSslConfig({ commonName: 'ca', isCA: true }), /basicConstraints = critical,CA:TRUE/);
  });

  it('makes a PKI whose certificates chain to its CA, and reuses it', function () {
    this.timeout(20_000);
    const dir = mkdtempSync(join(tmpdir(), 'mailcluster-pki-'));
    try {
      const pki = ensurePki(join(dir, 'pki'), '10.0.0.1');
      const ca = new X509Certificate(readFileSync(pki.caCert));
      const api = new X509Certificate(readFileSync(pki.apiserverCert));
      assert.ok(ca.ca);
      assert.ok(api.checkIssued(ca) && api.verify(ca.publicKey));
      assert.ok(api.checkIP('127.0.0.1') && api.checkHost('localhost') && api.checkIP('10.0.0.1'));
      const admin = new X509Certificate(readFileSync(pki.adminCert));
      assert.match(admin.subject, /O=system:masters/);
      const node = issueClientCertificate(pki, 'node-a', 'system:node:a', ['system:nodes']);
      const nodeCert = new X509Certificate(readFileSync(node.certFile));
      assert.match(nodeCert.subject, /CN=system:node:a/);
      assert.ok(nodeCert.verify(ca.publicKey));
      const again = ensurePki(join(dir, 'pki'), '10.0.0.1');
      assert.equal(readFileSync(again.caCert, 'utf8'), readFileSync(pki.caCert, 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders a self-contained kubeconfig', () => {
    const doc = load(renderKubeconfig({ name: 'n', server: 'https://127.0.0.1:1', caPem: 'CA', clientCertPem: 'CERT', clientKeyPem: 'KEY' })) as {
      clusters: Array<{ cluster: Record<string, string> }>;
      users: Array<{ user: Record<string, string> }>;
      'current-context': string;
    };
    assert.equal(doc['current-context'], 'n');
    assert.equal(doc.clusters[0].cluster.server, 'https://127.0.0.1:1');
    assert.equal(Buffer.from(doc.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), 'CA');
    assert.equal(Buffer.from(doc.users[0].user['client-key-data'], 'base64').toString(), 'KEY');
  });
});
