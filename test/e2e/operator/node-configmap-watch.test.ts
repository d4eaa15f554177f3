// A real mail node process watching its own ConfigMap through the real API server (the shared
// test control plane), with the account the operator gives it (node-access.ts: get/list/watch
// on that one ConfigMap). What the node serves is read from its SMTP banner (PARAM hostname).
// The mounted file is written by this test, as a kubelet would (late, or not at all).
// Proves: a ConfigMap change applies without any file change; an older file content written
// afterwards (a lagging kubelet) does not flip the node back; a ConfigMap that does not parse
// is refused with a clear log line and the running config stays; with no API access (403, no
// API server at the address, no KUBERNETES_SERVICE_HOST) the node runs from the file, follows
// it, keeps retrying, and takes the API's newer content once access comes.
// Addresses: nodes on 127.10.220.0/24 (this suite's node range); an unused port there plays
// an API server that is down.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import yaml from 'js-yaml';
import type { ChildProcess } from 'node:child_process';
import type { LocalCluster } from '../../../local/src/index.ts';
import { buildNodeAccess } from '../../../operator/src/resources/node-access.ts';
import type { MailCluster } from '../../../operator/src/api/v1alpha1/types.ts';
import { addressIn, freePort } from '../../support/addresses.ts';
import { sharedLocalCluster } from '../../support/local-cluster.ts';
import { makeTempDir, sleep, spawnTracked, stopChild, tailOf, waitUntil } from '../../support/processes.ts';
import { node24, repoRoot } from '../../support/mail-node.ts';
import { clients, type Clients } from './harness.ts';

const RANGE = '127.10.220.0/24';
const NS = `cmw-e2e-${randomBytes(3).toString('hex')}`;
const MC = 'watch';
const CONFIG_DIR = '/etc/mailcluster';

function smtpConf(hostname: string, address: string, extra = ''): string {
  return `PARAM hostname ${hostname}\nPARAM BindSmtp ${address} 2525\nPARAM BindMailq ${address} 1174\nPARAM BindAdmin ${address} 8025\nPARAM smtp-greet-pause 0\n${extra}`;
}
const zmConf = (address: string): string => `SELFADDRESSES=${address}\nPOSTOFFICE=/var/spool/mailcluster\n`;

/** The hostname in the node's 220 banner: what it serves now. */
function banner(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: address, port: 2525 });
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no banner')); }, 5000);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (!buf.includes('\n')) return;
      clearTimeout(timer);
      s.end('QUIT\r\n');
      resolve(buf.split(' ')[1] ?? '');
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

interface RunningNode { child: ChildProcess; address: string; root: string; logs(): string }

describe('node: its own ConfigMap through the API server, the mounted file as the fallback (real control plane)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let c: Clients;
  let owner: MailCluster;
  const nodes: RunningNode[] = [];
  let next = 10;

  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await cluster.kubectl(args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 })).stdout;
  const setConfigMap = async (index: number, hostname: string, address: string, extra = ''): Promise<void> => {
    await kubectl(['apply', '-f', '-'], yaml.dump({
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${MC}-${index}-config`, namespace: NS },
      data: { 'smtpserver.conf': smtpConf(hostname, address, extra), 'zmailer.conf': zmConf(address) },
    }));
  };
  /** Writes the mounted files as the kubelet does: new files, then one rename. */
  const writeFiles = (n: RunningNode, hostname: string): void => {
    const dir = join(n.root, CONFIG_DIR);
    writeFileSync(join(dir, '.smtpserver.conf.tmp'), smtpConf(hostname, n.address));
    writeFileSync(join(dir, '.zmailer.conf.tmp'), zmConf(n.address));
    renameSync(join(dir, '.zmailer.conf.tmp'), join(dir, 'zmailer.conf'));
    renameSync(join(dir, '.smtpserver.conf.tmp'), join(dir, 'smtpserver.conf'));
  };
  const serves = (n: RunningNode, hostname: string, timeoutMs = 20_000): Promise<void> =>
    waitUntil(`${n.address} serving ${hostname}`, async () => (await banner(n.address).catch(() => '')) === hostname, { timeoutMs, intervalMs: 50 });
  /** Still serving `hostname` after the file watcher's debounce and then some. */
  const staysAt = async (n: RunningNode, hostname: string): Promise<void> => {
    await sleep(1500);
    assert.equal(await banner(n.address), hostname);
  };

  async function startNode(index: number, fileHostname: string, env: Record<string, string>, token?: string): Promise<RunningNode> {
    const address = addressIn(RANGE, next++);
    const root = makeTempDir('cmw-node-');
    mkdirSync(join(root, CONFIG_DIR), { recursive: true });
    mkdirSync(join(root, 'var/spool/mailcluster'), { recursive: true });
    writeFileSync(join(root, CONFIG_DIR, 'smtpserver.conf'), smtpConf(fileHostname, address));
    writeFileSync(join(root, CONFIG_DIR, 'zmailer.conf'), zmConf(address));
    if (token !== undefined) {
      const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
      mkdirSync(sa, { recursive: true });
      const current = cluster.kubeConfig.getCurrentCluster()!;
      writeFileSync(join(sa, 'ca.crt'), current.caData ? Buffer.from(current.caData, 'base64') : readFileSync(current.caFile!));
      writeFileSync(join(sa, 'token'), token);
      writeFileSync(join(sa, 'namespace'), NS);
    }
    const child = spawnTracked(node24, [join(repoRoot, 'bin/mailcluster.js'), 'node', '--config-dir', CONFIG_DIR], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '', MAILCLUSTER_ROOT: root, MAILCLUSTER_CONFIGMAP: `${MC}-${index}-config`,
        MAILCLUSTER_RELOAD_DEBOUNCE_MS: '100', MAILCLUSTER_CONFIGMAP_WATCH_BACKOFF_MS: '200', MAILCLUSTER_DELIVERY_THREAD: '0', ...env,
      },
    });
    const out = tailOf(child.stdout, 200_000);
    const err = tailOf(child.stderr, 20_000);
    const n = { child, address, root, logs: () => out() + err() };
    nodes.push(n);
    await waitUntil(`node ${address} listening`, async () => (await banner(address).catch(() => '')) !== '', {
      timeoutMs: 30_000, intervalMs: 100, abort: () => (child.exitCode !== null ? `node exited ${child.exitCode}: ${n.logs()}` : undefined),
    });
    return n;
  }

  const apiEnv = (): Record<string, string> => {
    const server = new URL(cluster.server);
    return { KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port };
  };
  const tokenFor = async (index: number): Promise<string> =>
    (await c.core.createNamespacedServiceAccountToken({ name: `${MC}-${index}-node`, namespace: NS, body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } } as never })).status!.token!;

  before(async function () {
    this.timeout(20 * 60_000);
    cluster = await sharedLocalCluster();
    c = clients(cluster.kubeConfig);
    await kubectl(['create', 'namespace', NS]);
    // The operator's own builders; the owner is a stand-in object (no MailCluster CRD needed).
    const cm = JSON.parse(await kubectl(['create', 'configmap', 'owner', '-n', NS, '-o', 'json']));
    owner = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: MC, namespace: NS, uid: cm.metadata.uid }, spec: {} } as unknown as MailCluster;
    const access = [0, 1, 2].flatMap((i) => buildNodeAccess(owner, i)).map((o) => ({ ...o, metadata: { ...o.metadata, ownerReferences: [] } }));
    await kubectl(['apply', '-f', '-'], access.map((o) => yaml.dump(o)).join('---\n'));
  });

  after(async function () {
    this.timeout(60_000);
    for (const n of nodes) await stopChild(n.child, 'SIGKILL', 5000).catch(() => undefined);
    if (cluster) await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']).catch(() => undefined);
  });

  it('takes a ConfigMap change from the API server with no file change; an older file content written later does not flip it back', async () => {
    const address = addressIn(RANGE, next);
    await setConfigMap(0, 'v2.example', address);
    const n = await startNode(0, 'v1.example', apiEnv(), await tokenFor(0));
    assert.equal(n.address, address);
    await serves(n, 'v2.example'); // the list at start: newer than the file it started from
    await setConfigMap(0, 'v3.example', address);
    await serves(n, 'v3.example');
    writeFiles(n, 'v2.example'); // a lagging kubelet writes the previous content
    await staysAt(n, 'v3.example');
    writeFiles(n, 'v1.example'); // or the one the node started from
    await staysAt(n, 'v3.example');
    writeFiles(n, 'v3.example'); // the kubelet catches up: same content, nothing to do
    await staysAt(n, 'v3.example');
    assert.match(n.logs(), /watching the ConfigMap through the API server/);
  });

  it('refuses a ConfigMap that does not parse with a log line naming it and the line, and keeps serving the last good one', async () => {
    const n = nodes[0];
    await kubectl(['apply', '-f', '-'], yaml.dump({
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${MC}-0-config`, namespace: NS },
      data: { 'smtpserver.conf': smtpConf('v4.example', n.address, 'PARAM no-such-param 1\n'), 'zmailer.conf': zmConf(n.address) },
    }));
    await waitUntil('the refusal logged', async () => /configuration not reloaded, keeping the last good one: .*configmap .*watch-0-config.* smtpserver\.conf.*:6/.test(n.logs()), { timeoutMs: 20_000, intervalMs: 100 });
    await staysAt(n, 'v3.example');
    await setConfigMap(0, 'v5.example', n.address);
    await serves(n, 'v5.example');
  });

  it('without the right to read (403) it runs from the file, follows it, keeps retrying, and takes the newer ConfigMap once allowed', async () => {
    await kubectl(['delete', 'rolebinding', `${MC}-1-node`, '-n', NS]);
    const address = addressIn(RANGE, next);
    await setConfigMap(1, 'api-1.example', address);
    const n = await startNode(1, 'file-1.example', apiEnv(), await tokenFor(1));
    await waitUntil('the 403 logged', async () => /ConfigMap watch away \(API server answered 403/.test(n.logs()), { timeoutMs: 20_000, intervalMs: 100 });
    await staysAt(n, 'file-1.example');
    writeFiles(n, 'file-2.example');
    await serves(n, 'file-2.example');
    // Access granted: the API's content wins over the file's (its content is newer).
    await kubectl(['apply', '-f', '-'], yaml.dump({ ...buildNodeAccess(owner, 1)[2], metadata: { ...buildNodeAccess(owner, 1)[2].metadata, ownerReferences: [] } }));
    await setConfigMap(1, 'api-2.example', address);
    await serves(n, 'api-2.example', 60_000);
    writeFiles(n, 'file-2.example');
    await staysAt(n, 'api-2.example');
  });

  it('with no API server at the address, or none given, it runs from the file and follows it', async () => {
    const down = await freePort(addressIn(RANGE, 250));
    const a = await startNode(2, 'down-1.example', { KUBERNETES_SERVICE_HOST: addressIn(RANGE, 250), KUBERNETES_SERVICE_PORT: String(down) }, await tokenFor(2));
    await waitUntil('the failed connection logged', async () => /ConfigMap watch away \(connect ECONNREFUSED/.test(a.logs()), { timeoutMs: 20_000, intervalMs: 100 });
    writeFiles(a, 'down-2.example');
    await serves(a, 'down-2.example');
    const retries = (a.logs().match(/"event":"configmap-watch"/g) ?? []).length;
    assert.ok(retries >= 1);
    const b = await startNode(2, 'none-1.example', {});
    await waitUntil('no API server logged', async () => /no ConfigMap watch \(KUBERNETES_SERVICE_HOST is not set\): running from the mounted files only/.test(b.logs()), { timeoutMs: 20_000, intervalMs: 100 });
    writeFiles(b, 'none-2.example');
    await serves(b, 'none-2.example');
  });
});
