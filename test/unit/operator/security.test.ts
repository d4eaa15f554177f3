// Issue 10, operator side, as pure functions and one real TLS handshake: derived credentials,
// the ETRN user's IP ACLs as the node itself parses and matches them, the admin Secret and
// hash, the NetworkPolicy, the peer TLS material, the pod's mounts and uid, the Secret
// writer's change detection, the master key file. The TLS test binds 127.45.0.0/16 only.
import assert from 'node:assert/strict';
import { createHash, createHmac, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { withDefaults } from '../../../operator/src/api/v1alpha1/defaults.ts';
import { parseOperatorArgs } from '../../../operator/src/args.ts';
import { masterKeyFromFile, parseMasterKey } from '../../../operator/src/controller/master-key.ts';
import { needsWrite, SECRET_RESYNC_MS } from '../../../operator/src/controller/secret-writer.ts';
import { fromClientModel, toClientModel } from '../../../operator/src/controller/client-model.ts';
import { probeQueue, requestDrain } from '../../../operator/src/controller/node-admin.ts';
import type { KObject } from '../../../operator/src/controller/observed.ts';
import { renderSmtpserverConf, type ClusterView } from '../../../operator/src/resources/config.ts';
import { adminToken, clusterCredentials, mailqPassword, sha256Hex } from '../../../operator/src/resources/credentials.ts';
import { buildNetworkPolicy, parseLabelSelector } from '../../../operator/src/resources/network-policy.ts';
import { buildPeerTlsSecret, issuePeerTls } from '../../../operator/src/resources/peer-tls.ts';
import { buildPod, NODE_UID } from '../../../operator/src/resources/pod.ts';
import { buildAdminSecret, buildMailqSecret, NOBODY_ACL, podAcls, renderSchedulerAuth } from '../../../operator/src/resources/secret.ts';
// The node's own parser and matcher (read only): what the operator writes must mean to the
// node exactly what the operator intends.
import { parseSchedulerAuth } from '../../../node-image/src/config/parse.ts';
import { aclAllows } from '../../../node-image/src/mailq/auth.ts';
import { addressIn, freePort } from '../../support/addresses.ts';
import { makeTempDir } from '../../support/processes.ts';
import { ADMIN_ACCESS, MASTER_KEY, mailCluster, World } from './fixtures.ts';
import { plan } from '../../../operator/src/controller/plan.ts';

const RANGE = '127.45.0.0/16';
const ID = { namespace: 'mail', name: 'mc', uid: 'uid-1234' };
const text = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');

describe('operator security (issue 10)', () => {
  describe('credentials derived from the master key', () => {
    it('are HMAC-SHA256(key, "<purpose>/ns/name/uid") in hex, as BRIEF contract 1 fixes', () => {
      const expect = (purpose: string) => createHmac('sha256', MASTER_KEY).update(`${purpose}/mail/mc/uid-1234`).digest('hex');
      assert.equal(adminToken(MASTER_KEY, ID), expect('admin'));
      assert.equal(mailqPassword(MASTER_KEY, ID), expect('mailq'));
      assert.match(adminToken(MASTER_KEY, ID), /^[0-9a-f]{64}$/);
      assert.deepEqual(clusterCredentials(MASTER_KEY, ID), { adminToken: expect('admin'), mailqPassword: expect('mailq') });
    });

    it('differ for every other key, namespace, name, uid and purpose (no two clusters share one)', () => {
      fc.assert(fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 64 }), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.uuid(),
        (key, namespace, name, uid) => {
          const id = { namespace, name, uid };
          const k = Buffer.from(key);
          const all = [
            adminToken(k, id), mailqPassword(k, id),
            adminToken(k, { ...id, uid: `${uid}x` }), adminToken(k, { ...id, name: `${name}x` }), adminToken(k, { ...id, namespace: `${namespace}x` }),
            adminToken(Buffer.concat([k, Buffer.from([1])]), id),
          ];
          assert.equal(new Set(all).size, all.length);
          assert.equal(adminToken(Buffer.from(key), id), all[0], 'the same inputs give the same token (restart, other replica)');
        }), { numRuns: 200 });
    });

    it('refuse a short master key and a cluster without uid', () => {
      assert.throws(() => adminToken(Buffer.alloc(31), ID), /at least 32 bytes/);
      assert.throws(() => mailqPassword(MASTER_KEY, { ...ID, uid: '' }), /no uid/);
    });
  });

  describe('Secrets <name>-mailq and <name>-admin', () => {
    const cluster = mailCluster();

    it('holds the token in <name>-admin and only its SHA-256 in the mounted <name>-mailq', () => {
      const token = adminToken(MASTER_KEY, ID);
      const admin = buildAdminSecret(cluster, token);
      assert.equal(admin.metadata.name, 'mc-admin');
      assert.deepEqual(Object.keys(admin.data), ['token']);
      assert.equal(text(admin.data.token), token);
      const mailq = buildMailqSecret(cluster, mailqPassword(MASTER_KEY, ID), token, ['127.40.0.10']);
      const hash = text(mailq.data['admin-token.sha256']).trim();
      assert.equal(hash, createHash('sha256').update(token).digest('hex'));
      assert.equal(hash, sha256Hex(token));
      for (const v of Object.values(mailq.data)) assert.ok(!text(v).includes(token), 'the token itself is never in the mounted Secret');
      for (const s of [admin, mailq]) assert.equal(s.metadata.ownerReferences[0].uid, 'uid-1234');
    });

    it('writes one ACL item per live pod: [ip]/32, IPv6 [ip]/128, sorted, none duplicated', () => {
      assert.deepEqual(podAcls(['127.40.0.11', '127.40.0.2', '2001:db8::1', '127.40.0.2']), ['[127.40.0.2]/32', '[127.40.0.11]/32', '[2001:db8::1]/128']);
      assert.equal(renderSchedulerAuth('pw-pw-pw-pw-pw-pw-pw', ['127.40.0.10', '127.40.0.11']), 'etrn:pw-pw-pw-pw-pw-pw-pw:ETRN:[127.40.0.10]/32 [127.40.0.11]/32\n');
    });

    it('lets no one in while no pod has an address (an empty ACL would let everyone in)', () => {
      assert.deepEqual(podAcls([]), [NOBODY_ACL]);
      const [user] = parseSchedulerAuth(renderSchedulerAuth('pw-pw-pw-pw-pw-pw-pw', []), 'scheduler.auth');
      for (const client of ['127.0.0.1', '10.0.0.1', '203.0.113.9', '::1', '2001:db8::1']) assert.equal(aclAllows(user.acls, client), false, client);
    });

    it('means to the node exactly "these pods and nobody else", for any set of pod addresses (node parser + matcher)', () => {
      const v4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((p) => p.join('.'));
      const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
      const ip = fc.oneof(v4, v6);
      fc.assert(fc.property(fc.uniqueArray(ip, { minLength: 1, maxLength: 12 }), fc.array(ip, { maxLength: 12 }), (pods, others) => {
        const file = renderSchedulerAuth(mailqPassword(MASTER_KEY, ID), pods);
        const users = parseSchedulerAuth(file, 'scheduler.auth');
        assert.equal(users.length, 1);
        assert.equal(users[0].user, 'etrn');
        assert.deepEqual(users[0].rights, ['ETRN']);
        for (const p of pods) assert.ok(aclAllows(users[0].acls, p), `${p} is a pod: ${file}`);
        for (const o of others) {
          const isPod = pods.some((p) => canonical(p) === canonical(o));
          assert.equal(aclAllows(users[0].acls, o), isPod, `${o} ${isPod ? 'is' : 'is not'} a pod: ${file}`);
        }
      }), { numRuns: 300 });
    });
  });

  describe('NetworkPolicy <name>', () => {
    const cluster = mailCluster();

    it('opens SMTP to all, MAILQv2 to the cluster\'s own pods, admin to the operator\'s pods only', () => {
      const np = buildNetworkPolicy(cluster, ADMIN_ACCESS) as any;
      assert.equal(np.apiVersion, 'networking.k8s.io/v1');
      assert.equal(np.metadata.name, 'mc');
      assert.equal(np.metadata.labels['app.kubernetes.io/managed-by'], 'mailcluster-operator');
      assert.equal(np.metadata.ownerReferences[0].uid, 'uid-1234');
      const own = { 'app.kubernetes.io/name': 'mailcluster-node', 'app.kubernetes.io/instance': 'mc' };
      assert.deepEqual(np.spec.podSelector, { matchLabels: own }, 'serving and draining pods alike');
      assert.deepEqual(np.spec.policyTypes, ['Ingress'], 'egress stays open: mail goes out to the Internet');
      const byPort = new Map<number, any>(np.spec.ingress.map((r: any) => [r.ports[0].port, r]));
      assert.equal(np.spec.ingress.length, 3);
      assert.ok(np.spec.ingress.every((r: any) => r.ports.length === 1 && r.ports[0].protocol === 'TCP'));
      assert.equal(byPort.get(2525).from, undefined, 'SMTP from anywhere');
      assert.deepEqual(byPort.get(1174).from, [{ podSelector: { matchLabels: own } }], 'MAILQv2 from this cluster\'s pods, in its namespace only');
      assert.deepEqual(byPort.get(8025).from, [{
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'mail-system' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'mailcluster-operator' } },
      }], 'admin from the operator pods only (namespace AND pod selector in one peer)');
    });

    it('adds the metrics scrapers\' namespaces (and pods) to the admin port only when configured', () => {
      const np = buildNetworkPolicy(cluster, { ...ADMIN_ACCESS, metricsNamespaceLabels: { 'kubernetes.io/metadata.name': 'monitoring' }, metricsPodLabels: { app: 'prometheus' } }) as any;
      const admin = np.spec.ingress.find((r: any) => r.ports[0].port === 8025);
      assert.equal(admin.from.length, 2);
      assert.deepEqual(admin.from[1], { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { app: 'prometheus' } } });
      const mailq = np.spec.ingress.find((r: any) => r.ports[0].port === 1174);
      assert.equal(mailq.from.length, 1, 'scrapers get no MAILQv2');
      const nsOnly = buildNetworkPolicy(cluster, { ...ADMIN_ACCESS, metricsNamespaceLabels: { team: 'obs' } }) as any;
      assert.deepEqual(nsOnly.spec.ingress[2].from[1], { namespaceSelector: { matchLabels: { team: 'obs' } } });
    });

    it('keeps its `from` peers through the client library (which names them `_from` and drops `from` silently)', async () => {
      // The library's own serializer, as KubernetesObjectApi.patch uses it (a JSON round trip drops undefined).
      const { ObjectSerializer } = await import('@kubernetes/client-node/dist/gen/models/ObjectSerializer.js');
      const np = buildNetworkPolicy(cluster, ADMIN_ACCESS) as unknown as KObject;
      const json = (v: unknown) => JSON.parse(JSON.stringify(v));
      const sent = json(ObjectSerializer.serialize(toClientModel(np), 'V1NetworkPolicy', ''));
      assert.deepEqual(sent.spec.ingress, (np as any).spec.ingress, 'the request body is the API\'s JSON, every from kept');
      assert.equal(json(ObjectSerializer.serialize(np, 'V1NetworkPolicy', '')).spec.ingress[1].from, undefined, 'without the translation the rule would allow everyone');
      // What a list returns (model names) and a watch event (JSON names) both read back as JSON.
      const listed = ObjectSerializer.deserialize(json(np), 'V1NetworkPolicy', '');
      assert.equal(listed.spec.ingress[1].from, undefined);
      const { kind: _k, ...fromList } = fromClientModel(JSON.parse(JSON.stringify(listed)) as KObject) as any;
      assert.deepEqual(fromList.spec, (np as any).spec);
      assert.deepEqual((fromClientModel(JSON.parse(JSON.stringify(np))) as any).spec, (np as any).spec);
    });

    it('reads selectors from flags and refuses malformed or empty ones', () => {
      assert.deepEqual(parseLabelSelector('app.kubernetes.io/name=mailcluster-operator,app.kubernetes.io/instance=mc', '--x'),
        { 'app.kubernetes.io/name': 'mailcluster-operator', 'app.kubernetes.io/instance': 'mc' });
      for (const bad of ['', 'novalue', 'a=b=c', 'a b=c', '=x', 'Bad_Prefix.io/a=b']) assert.throws(() => parseLabelSelector(bad, '--x'), /--x/, bad);
      const args = parseOperatorArgs(['--operator-pod-selector', 'a=b', '--metrics-namespace-selector', 'kubernetes.io/metadata.name=monitoring', '--master-key-file', '/k']);
      assert.deepEqual(args.operatorPodSelector, { a: 'b' });
      assert.deepEqual(args.metricsNamespaceSelector, { 'kubernetes.io/metadata.name': 'monitoring' });
      assert.equal(args.masterKeyFile, '/k');
      assert.deepEqual(parseOperatorArgs([]).operatorPodSelector, { 'app.kubernetes.io/name': 'mailcluster-operator' });
      assert.equal(parseOperatorArgs([]).masterKeySecret, 'mailcluster-operator-master-key');
      assert.throws(() => parseOperatorArgs(['--metrics-pod-selector', 'a=b']), /needs --metrics-namespace-selector/);
      assert.equal(parseOperatorArgs(['--secret-resync', '2s']).secretResyncMs, 2000);
      assert.throws(() => parseOperatorArgs(['--secret-resync', 'soon']), /--secret-resync/);
      assert.throws(() => parseOperatorArgs(['--master-key-secret', 'Not A Name']), /not a Secret name/);
      assert.throws(() => parseOperatorArgs(['--operator-namespace', 'Bad_NS']), /not a namespace name/);
    });
  });

  describe('pods', () => {
    it('run as the node image\'s USER (node-image/Dockerfile), uid and gid', () => {
      const dockerfile = readFileSync(fileURLToPath(new URL('../../../node-image/Dockerfile', import.meta.url)), 'utf8');
      const m = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(dockerfile);
      assert.ok(m, 'node-image/Dockerfile has a numeric USER uid:gid');
      const pod = buildPod(mailCluster(), withDefaults(mailCluster().spec), 0) as any;
      assert.equal(pod.spec.securityContext.runAsUser, Number(m[1]));
      assert.equal(pod.spec.securityContext.runAsGroup, Number(m[2] ?? m[1]));
      assert.equal(NODE_UID, 10001, 'outside the host\'s usual user range');
      // Pod Security "restricted", field by field.
      assert.equal(pod.spec.securityContext.runAsNonRoot, true);
      assert.equal(pod.spec.securityContext.seccompProfile.type, 'RuntimeDefault');
      const c = pod.spec.containers[0].securityContext;
      assert.equal(c.allowPrivilegeEscalation, false);
      assert.deepEqual(c.capabilities.drop, ['ALL']);
      const allowed = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
      for (const v of pod.spec.volumes) for (const k of Object.keys(v).filter((k) => k !== 'name')) assert.ok(allowed.has(k), `volume type ${k}`);
    });

    it('mount admin-token.sha256, the peer TLS files and (when set) the SMTP AUTH users into the one config volume', () => {
      const cluster = mailCluster({ smtpAuth: { secretName: 'relay-users' } });
      const pod = buildPod(cluster, withDefaults(cluster.spec), 1) as any;
      const sources = pod.spec.volumes.find((v: any) => v.name === 'config').projected.sources;
      const paths = sources.flatMap((s: any) => (s.configMap ?? s.secret).items.map((i: any) => `${(s.configMap ?? s.secret).name}:${i.key}->${i.path}`));
      assert.deepEqual(paths, [
        'mc-1-config:smtpserver.conf->smtpserver.conf', 'mc-1-config:zmailer.conf->zmailer.conf',
        'mc-mailq:scheduler.auth->scheduler.auth', 'mc-mailq:etrn-password->etrn-password', 'mc-mailq:admin-token.sha256->admin-token.sha256',
        'mc-peer-tls:ca.crt->peer-tls/ca.crt', 'mc-peer-tls:tls.crt->peer-tls/tls.crt', 'mc-peer-tls:tls.key->peer-tls/tls.key',
        'relay-users:users->smtp-auth/users',
      ]);
      assert.ok(!JSON.stringify(pod).includes('mc-admin'), 'the plaintext token Secret is never mounted');
      assert.equal(pod.spec.containers[0].volumeMounts.filter((m: any) => m.mountPath.startsWith('/etc/mailcluster/')).length, 0, 'no nested mounts');
      const plain = buildPod(mailCluster(), withDefaults(mailCluster().spec), 1) as any;
      assert.ok(!JSON.stringify(plain).includes('smtp-auth'));
    });

    it('render the contract\'s PARAMs: admin-token-sha256 @file, the four peer-tls ones, smtp-auth-users only with spec.smtpAuth', () => {
      const view = (spec: object): ClusterView => ({
        name: 'relay', namespace: 'mail', spec: withDefaults({ hostname: 'smtp.isp.net', ...spec }), peers: [{ index: 0, ip: '127.40.0.9' }], indices: [0], loadBalancerAddresses: [],
      });
      const lines = renderSmtpserverConf(view({ smtpAuth: { secretName: 'u' } })).split('\n');
      for (const want of [
        'PARAM admin-token-sha256 @/etc/mailcluster/admin-token.sha256',
        'PARAM peer-tls-ca-file /etc/mailcluster/peer-tls/ca.crt',
        'PARAM peer-tls-cert-file /etc/mailcluster/peer-tls/tls.crt',
        'PARAM peer-tls-key-file /etc/mailcluster/peer-tls/tls.key',
        'PARAM peer-tls-name relay-peers.mail.svc',
        'PARAM smtp-auth-users /etc/mailcluster/smtp-auth/users',
      ]) assert.ok(lines.includes(want), want);
      assert.ok(!renderSmtpserverConf(view({})).includes('smtp-auth-users'));
    });
  });

  describe('peer TLS', () => {
    let material: Awaited<ReturnType<typeof issuePeerTls>>;
    before(async () => { material = await issuePeerTls('relay', 'relay-peers.mail.svc'); });

    it('issues a CA and a leaf for <name>-peers.<ns>.svc signed by it', async () => {
      const ca = new X509Certificate(material.caCert);
      const leaf = new X509Certificate(material.cert);
      assert.equal(ca.ca, true);
      assert.equal(leaf.ca, false);
      assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
      assert.equal(leaf.subjectAltName, 'DNS:relay-peers.mail.svc');
      assert.equal(leaf.checkHost('relay-peers.mail.svc'), 'relay-peers.mail.svc');
      assert.equal(leaf.checkHost('relay.mail.svc'), undefined);
      assert.ok(new Date(leaf.validTo).getTime() > Date.now() + 5 * 365 * 86_400_000);
      const other = await issuePeerTls('relay', 'relay-peers.mail.svc');
      assert.notEqual(other.caCert, material.caCert, 'a fresh CA per cluster');
      const secret = buildPeerTlsSecret(mailCluster(), material);
      assert.equal(secret.metadata.name, 'mc-peer-tls');
      assert.deepEqual(Object.keys(secret.data).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
    });

    it('verifies over a real socket with the CA and peer-tls-name, and fails with another CA or name', async () => {
      const host = addressIn(RANGE, 10);
      const port = await freePort(host);
      const server = createServer({ cert: material.cert, key: material.key }, (s) => s.end('hello\n'));
      await new Promise<void>((r) => server.listen(port, host, () => r()));
      const dial = (ca: string, servername: string) => new Promise<string>((resolve, reject) => {
        const s: TLSSocket = connect({ host, port, ca, servername, rejectUnauthorized: true }, () => { s.once('data', (d) => { resolve(String(d)); s.end(); }); });
        s.once('error', reject);
      });
      try {
        assert.equal(await dial(material.caCert, 'relay-peers.mail.svc'), 'hello\n');
        await assert.rejects(dial((await issuePeerTls('x', 'relay-peers.mail.svc')).caCert, 'relay-peers.mail.svc'), /certificate/);
        await assert.rejects(dial(material.caCert, 'other-peers.mail.svc'), /altnames|Hostname/);
      } finally {
        await new Promise((r) => server.close(r));
      }
    });
  });

  describe('peer certificate from cert-manager (spec.peerTls.issuerRef)', () => {
    it('plans a Certificate into <name>-peer-tls for <name>-peers.<ns>.svc instead of creating the Secret', () => {
      const w = new World(mailCluster({ peerTls: { issuerRef: { name: 'mail-ca' } } }));
      const p = plan(w.observed());
      assert.deepEqual(p.createOnce, []);
      const certs = p.unwatched.filter((o) => o.kind === 'Certificate');
      assert.equal(certs.length, 1);
      const cert = certs[0] as any;
      assert.equal(cert.apiVersion, 'cert-manager.io/v1');
      assert.equal(cert.kind, 'Certificate');
      assert.equal(cert.metadata.name, 'mc-peer-tls');
      assert.equal(cert.metadata.ownerReferences[0].uid, 'uid-1234');
      assert.equal(cert.spec.secretName, 'mc-peer-tls');
      assert.deepEqual(cert.spec.dnsNames, ['mc-peers.mail.svc']);
      assert.deepEqual(cert.spec.issuerRef, { name: 'mail-ca', kind: 'Issuer', group: 'cert-manager.io' });
      assert.ok(cert.spec.usages.includes('server auth') && cert.spec.usages.includes('client auth'));
      // Pods mount the same Secret either way.
      const pod = p.apply.find((o) => o.kind === 'Pod') as any;
      assert.ok(pod.spec.volumes[0].projected.sources.some((s: any) => s.secret?.name === 'mc-peer-tls'));
      const plain = plan(new World(mailCluster()).observed());
      assert.deepEqual(plain.unwatched.filter((o) => o.kind === 'Certificate'), []);
      assert.deepEqual(plain.createOnce, [{ name: 'mc-peer-tls', dnsName: 'mc-peers.mail.svc' }]);
    });
  });

  describe('admin API calls', () => {
    it('send the cluster\'s token as a Bearer credential on POST /drain and GET /queue (a real HTTP server)', async () => {
      const host = addressIn(RANGE, 11);
      const seen: Array<[string, string, string | undefined]> = [];
      const server = createHttpServer((req, res) => {
        seen.push([req.method!, req.url!, req.headers.authorization]);
        const ok = req.headers.authorization === 'Bearer t0ken';
        res.statusCode = ok ? (req.method === 'POST' ? 202 : 200) : 401;
        if (!ok) res.setHeader('WWW-Authenticate', 'Bearer');
        res.end(req.method === 'GET' && ok ? JSON.stringify({ total: 0, draining: true, drained: true }) : '');
      });
      const port = await freePort(host);
      await new Promise<void>((r) => server.listen(port, host, () => r()));
      try {
        await requestDrain(`http://${host}:${port}/drain`, 't0ken');
        assert.deepEqual(await probeQueue(`http://${host}:${port}`, 't0ken', 'uid-1'), { total: 0, draining: true, drained: true, uid: 'uid-1' });
        await assert.rejects(requestDrain(`http://${host}:${port}/drain`, 'wrong'), /HTTP 401/);
        assert.deepEqual(await probeQueue(`http://${host}:${port}`, 'wrong'), { error: 'GET /queue: HTTP 401' });
        assert.deepEqual(seen.map((x) => x[2]), ['Bearer t0ken', 'Bearer t0ken', 'Bearer wrong', 'Bearer wrong']);
      } finally {
        await new Promise((r) => server.close(r));
      }
    });
  });

  describe('writing Secrets without reading them', () => {
    it('writes when nothing was written, the content changed, or the resync period passed; not otherwise', () => {
      const t = 1_000_000;
      assert.equal(needsWrite(undefined, 'h1', t), true);
      assert.equal(needsWrite({ hash: 'h1', at: t }, 'h1', t + 1), false);
      assert.equal(needsWrite({ hash: 'h1', at: t }, 'h2', t + 1), true);
      assert.equal(needsWrite({ hash: 'h1', at: t }, 'h1', t + SECRET_RESYNC_MS - 1), false);
      assert.equal(needsWrite({ hash: 'h1', at: t }, 'h1', t + SECRET_RESYNC_MS), true);
    });

    it('keeps the master key in a file it makes once (mode 0600) and reads back the same key', () => {
      const dir = makeTempDir('master-key');
      const file = join(dir, 'key');
      const first = masterKeyFromFile(file);
      assert.equal(first.length, 32);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(masterKeyFromFile(file), first);
      assert.throws(() => parseMasterKey('abc', 'x'), /at least 64 hex digits/);
      assert.throws(() => parseMasterKey('zz'.repeat(32), 'x'), /hex/);
      assert.equal(parseMasterKey(` ${'ab'.repeat(32)}\n`, 'x').length, 32);
    });
  });
});

/** An address in one spelling (IPv6 groups expanded) to compare generated addresses. */
function canonical(ip: string): string {
  if (!ip.includes(':')) return ip;
  return ip.split(':').map((g) => parseInt(g, 16).toString(16)).join(':');
}
