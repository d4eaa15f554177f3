// The operator's rendered configuration run by a real node process: the files a pod gets
// (ConfigMap + <name>-mailq + <name>-peer-tls, as the projected volume lays them out), the
// admin API guarded by the derived token, MAILQv2 AUTH allowed from pod addresses only.
// Binds 127.45.1.0/24. Needs the node side of BRIEF contracts 1 and 4 (branch sec-node: PARAM
// admin-token-sha256, peer-tls-*): it fails on an operator-only branch, by design — it is the
// check that operator and node agree.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { withDefaults } from '../../../operator/src/api/v1alpha1/defaults.ts';
import { renderSmtpserverConf, renderZmailerConf, type ClusterView } from '../../../operator/src/resources/config.ts';
import { clusterCredentials } from '../../../operator/src/resources/credentials.ts';
import { buildMailqSecret } from '../../../operator/src/resources/secret.ts';
import { issuePeerTls } from '../../../operator/src/resources/peer-tls.ts';
import { addressIn, freePort } from '../../support/addresses.ts';
import { makeTempDir, spawnTracked, stopChild, tailOf, waitUntil } from '../../support/processes.ts';
import { swaks } from '../../support/swaks.ts';
import { mailCluster } from '../../unit/operator/fixtures.ts';

const RANGE = '127.45.1.0/24';
const POD = addressIn(RANGE, 10);
const OTHER = addressIn(RANGE, 11);
// a draining node: no longer a peer, still trusted to hand its mail over
const DRAINING = addressIn(RANGE, 12);

function mailqAuth(host: string, port: number, localAddress: string, user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port, localAddress });
    let buf = '';
    s.setEncoding('latin1');
    s.on('error', reject);
    s.setTimeout(5000, () => { s.destroy(); resolve(`timeout: ${JSON.stringify(buf)}`); });
    s.on('close', () => resolve(`closed: ${JSON.stringify(buf)}`));
    s.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      const challenge = lines.find((l) => l.includes('MAILQ-V2-CHALLENGE'));
      if (challenge && !buf.includes('SENT')) {
        buf += 'SENT';
        s.write(`AUTH ${user} ${createHash('md5').update(challenge, 'latin1').update(password).digest('hex')}\n`);
        return;
      }
      const answer = buf.includes('SENT') ? buf.slice(buf.indexOf('SENT') + 4).split('\n').find((l) => l.startsWith('+') || l.startsWith('-')) : undefined;
      if (answer) { s.end('QUIT\n'); resolve(answer); }
    });
  });
}

describe('operator-rendered configuration on a real node (admin token, ETRN ACL, peer TLS)', function () {
  this.timeout(60_000);
  it('loads; POST /drain needs the derived token; MAILQv2 AUTH only from a pod address; a draining node may hand over mail for any domain', async () => {
    const cluster = mailCluster();
    const creds = clusterCredentials(Buffer.alloc(32, 9), { namespace: 'mail', name: 'mc', uid: 'uid-1234' });
    const view: ClusterView = { name: 'mc', namespace: 'mail', spec: withDefaults(cluster.spec), peers: [{ index: 0, ip: POD }], handingOff: [{ index: 1, ip: DRAINING }], indices: [0, 1], loadBalancerAddresses: [] };
    const root = makeTempDir('rendered');
    const etc = join(root, 'etc/mailcluster');
    mkdirSync(join(etc, 'peer-tls'), { recursive: true });
    mkdirSync(join(root, 'var/spool/mailcluster'), { recursive: true });
    const smtp = renderSmtpserverConf(view).replace('BindSmtp 0.0.0.0 2525', `BindSmtp 0.0.0.0 ${await freePort(POD)}`)
      .replace('BindMailq 0.0.0.0 1174', `BindMailq 0.0.0.0 ${await freePort(POD)}`).replace('BindAdmin 0.0.0.0 8025', `BindAdmin 0.0.0.0 ${await freePort(POD)}`);
    writeFileSync(join(etc, 'smtpserver.conf'), smtp);
    writeFileSync(join(etc, 'zmailer.conf'), renderZmailerConf(view));
    const secret = buildMailqSecret(cluster, creds.mailqPassword, creds.adminToken, [POD]);
    for (const [k, v] of Object.entries(secret.data)) writeFileSync(join(etc, k), Buffer.from(v, 'base64'));
    const tls = await issuePeerTls('mc', 'mc-peers.mail.svc');
    writeFileSync(join(etc, 'peer-tls/ca.crt'), tls.caCert);
    writeFileSync(join(etc, 'peer-tls/tls.crt'), tls.cert);
    writeFileSync(join(etc, 'peer-tls/tls.key'), tls.key);
    const admin = Number(/BindAdmin \S+ (\d+)/.exec(smtp)![1]);
    const mailq = Number(/BindMailq \S+ (\d+)/.exec(smtp)![1]);
    const child = spawnTracked('node_modules/.bin/node', ['bin/mailcluster.js', 'node', '--config-dir', '/etc/mailcluster'], {
      env: { ...process.env, MAILCLUSTER_ROOT: root, MAILCLUSTER_BIND_ADDRESS: POD }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = tailOf(child.stdout!, 50_000); const err = tailOf(child.stderr!, 50_000);
    try {
      await waitUntil('node ready', async () => (await fetch(`http://${POD}:${admin}/readyz`)).ok, { timeoutMs: 20_000, intervalMs: 200, abort: () => (child.exitCode !== null ? `exited: ${out()}${err()}` : undefined) });
      const post = (auth?: string) => fetch(`http://${POD}:${admin}/drain`, { method: 'POST', headers: auth ? { Authorization: auth } : {} });
      const none = await post(); const wrong = await post('Bearer nope');
      console.log(`      POST /drain: none ${none.status}, wrong ${wrong.status}`);
      assert.equal(none.status, 401); assert.equal(wrong.status, 401);
      const fromPod = await mailqAuth(POD, mailq, POD, 'etrn', creds.mailqPassword);
      const fromOther = await mailqAuth(POD, mailq, OTHER, 'etrn', creds.mailqPassword);
      console.log(`      MAILQv2 AUTH from pod ${fromPod} | from elsewhere ${fromOther}`);
      assert.match(fromPod, /^\+OK/); assert.match(fromOther, /^-BAD/);
      // a draining node's hand-off (mail for a foreign domain) is taken; anyone else's is refused
      const smtpPort = Number(/BindSmtp \S+ (\d+)/.exec(smtp)![1]);
      const relay = (localAddress: string) => swaks({ server: `${POD}:${smtpPort}`, to: 'someone@elsewhere.test', localAddress, quitAfter: 'rcpt' });
      const [fromDraining, fromStranger] = [await relay(DRAINING), await relay(OTHER)];
      console.log(`      RCPT to a foreign domain from a draining node ${fromDraining.lastCode} | from elsewhere ${fromStranger.lastCode}`);
      assert.equal(fromDraining.lastCode, 250, fromDraining.transcript);
      assert.equal(fromStranger.lastCode, 550, fromStranger.transcript);
      const ok = await post(`Bearer ${creds.adminToken}`);
      console.log(`      POST /drain with the derived token: ${ok.status}`);
      assert.ok(ok.status === 202 || ok.status === 200, String(ok.status));
    } finally {
      await stopChild(child, 'SIGTERM', 10_000);
    }
  });
});
