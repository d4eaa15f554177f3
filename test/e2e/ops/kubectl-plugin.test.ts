// `kubectl mailcluster` against local mode with a real kubelet (issue 14): a real operator
// runs a 2-node MailCluster; mail waits deferred on the nodes (the next hop is down); the
// plugin, started by the real kubectl's plugin discovery, lists every node with its queue,
// through the API server's pod proxy as on any cluster (the pods are 10.244.x inside the
// node's namespace; the host has no route to them). With the operator's admin credential
// (contract 1): hold keeps a message through an ETRN to Addr[0]; release lets it go.
// Needs root (the shared kubelet cluster). Run under the e2e lock (BRIEF).
// Own servers: the next hop on 127.48.140.10 (exposed inside at 10.244.0.26), DNS inside at 10.244.0.18.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { kubeletSuitesWanted, peerAddress, sharedLocalCluster } from '../../support/local-cluster.ts';
import type { LocalCluster } from '../../../local/src/index.ts';
import type { KubeletNode } from '../../../local/src/node/node.ts';
import { kubectlPlugin } from '../../support/kubectl-plugin.ts';
import { addressIn, freePort } from '../../support/addresses.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { swaks } from '../../support/swaks.ts';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
import { clients, conditionOf, crdYaml, getMailCluster, inNode, mailClusterObject, startOperator, type Clients, type OperatorProcess } from '../operator/harness.ts';

const NS = `ops-e2e-${randomBytes(3).toString('hex')}`;
const MC = 'relay';
const SMTP_PORT = 2525;
const own = (i: number) => addressIn('127.48.140.0/24', i);

(kubeletSuitesWanted() ? describe : describe.skip)('kubectl mailcluster against local mode with a real kubelet (issue 14; root)', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let node: KubeletNode;
  let exposed: { stop(): Promise<void> } | undefined;
  let c: Clients;
  let operator: OperatorProcess;
  let dns: DnsServer;
  let capture: CaptureServer;
  let binDir: string;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input === undefined ? {} : { input });
  /** `kubectl mailcluster ...` through kubectl's own plugin discovery (kubectl-mailcluster on the PATH). */
  let plugin: ReturnType<typeof kubectlPlugin>;

  before(async function () {
    this.timeout(900_000);
    cluster = await sharedLocalCluster();
    node = cluster.kubeletNode!;
    c = clients(cluster.kubeConfig);
    binDir = makeTempDir('kubectl-plugin-bin');
    plugin = kubectlPlugin({ binDir, kubectlPath: cluster.kubectlPath, kubeconfigPath: cluster.kubeconfigPath });
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], crdYaml());
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailclusters.mailcluster.io']);
    await kubectl(['create', 'namespace', NS]);
    capture = await startCaptureServer({ address: own(10), port: await freePort(own(10)) });
    await capture.stop(); // the next hop is down: mail waits deferred on the nodes
    const mx = await node.exposeHost(capture.address, capture.port, peerAddress(1, 10));
    exposed = mx;
    node.addPeerAddress(peerAddress(1, 2));
    const inside = inNode(node);
    dns = await startDns({ address: peerAddress(1, 2), inside, mx: [{ domain: 'customer.example', host: 'mx.customer.example', preference: 10 }], a: [{ name: 'mx.customer.example', ip: mx.address }] });
    operator = await startOperator(cluster.kubeconfigPath, ['--namespace', NS], inside);
    await kubectl(['apply', '-f', '-'], JSON.stringify(mailClusterObject(NS, MC, {
      replicas: 2, hostname: 'smtp.isp.example', relayDomains: ['customer.example'], service: { port: SMTP_PORT },
      delivery: { dnsServer: dns.server, port: capture.port, retryInterval: '1h' }, drainTimeout: '60s',
    })));
    await waitUntil('MailCluster Ready with 2 nodes', async () => {
      const mc = await getMailCluster(c, NS, MC);
      return conditionOf(mc, 'Ready')?.status === 'True' && mc.status?.readyReplicas === 2 && !!mc.status?.address;
    }, { timeoutMs: 120_000, intervalMs: 250 });
  });

  after(async function () {
    this.timeout(60_000);
    await operator?.stop();
    if (cluster) await kubectl(['delete', 'namespace', NS, '--wait=false']).catch(() => undefined);
    await dns?.stop();
    await exposed?.stop();
    await capture?.stop();
    if (binDir) removeTempDir(binDir);
  });

  it('status lists every node with its role and queue, through the API server\'s pod proxy', async () => {
    const address = (await getMailCluster(c, NS, MC)).status.address as string;
    for (let i = 0; i < 4; i++) {
      const r = await swaks({ server: `${address}:${SMTP_PORT}`, from: 'sender@isp.example', to: `user${i}@customer.example`, headers: [`X-Tag: e2e-${i}`], body: 'x', timeoutSeconds: 15 });
      assert.equal(r.lastCode, 250, r.transcript);
    }
    type Row = { node: string; role: string; queue: number; error: string | null; oldestSeconds: number | null };
    let rows: Row[] = [];
    await waitUntil('4 messages queued over the nodes', async () => {
      const r = await plugin('-n', NS, 'status', '-o', 'json');
      if (r.code !== 0) throw new Error(r.stderr || r.stdout);
      rows = (JSON.parse(r.stdout) as { nodes: Row[] }).nodes;
      return rows.reduce((n, x) => n + x.queue, 0) === 4;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.deepEqual(rows.map((r) => [r.node, r.role, r.error]), [[`${MC}-0`, 'serving', null], [`${MC}-1`, 'serving', null]]);
    assert.ok(rows.every((r) => r.queue === 0 || (r.oldestSeconds !== null && r.oldestSeconds >= 0)));
    const table = await plugin('-n', NS, '-c', MC, 'status');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^MailCluster relay: 2 node\(s\), 4 message\(s\) queued$/m);
    assert.match(table.stdout, /^NODE\s+ROLE\s+PHASE\s+READY\s+IP\s+QUEUE\s+HELD\s+DEFERRED\s+OLDEST\s+STATE$/m);
    assert.match(table.stdout, /^relay-0\s+serving\s+Running\s+true\s+10\.244\./m);
    // `--via auto` chose the proxy for these non-loopback pod IPs: saying it gives the same
    const proxied = await plugin('-n', NS, 'status', '--via', 'proxy', '-o', 'json');
    assert.equal(proxied.code, 0, proxied.stderr);
    assert.equal((JSON.parse(proxied.stdout) as { nodes: Row[] }).nodes.reduce((n, x) => n + x.queue, 0), 4);
  });

  it('queue operations with the admin token (Secret <name>-admin): list, show, hold through an ETRN to Addr[0], release', async () => {
    // The operator writes the credential (contract 1, issue 10): the digest into each node's
    // config, the token into Secret <name>-admin. Until it does, this test stops the operator
    // (so that it does not rewrite the ConfigMaps), adds the digest to each node's rendered
    // config and creates the Secret itself; first it checks that queue operations without a
    // credential fail with a clear message.
    const conf = (await c.core.readNamespacedConfigMap({ name: `${MC}-0-config`, namespace: NS })).data?.['smtpserver.conf'] ?? '';
    if (!conf.includes('admin-token-sha256')) {
      const r = await plugin('-n', NS, 'queue', 'list');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr + r.stdout, /no admin token|403|forbidden/i, r.stderr + r.stdout);
      await operator.stop();
      const token = randomBytes(24).toString('hex');
      const digest = createHash('sha256').update(token).digest('hex');
      await kubectl(['create', 'secret', 'generic', `${MC}-admin`, '-n', NS, `--from-literal=token=${token}`]);
      for (const i of [0, 1]) {
        const name = `${MC}-${i}-config`;
        const text = (await c.core.readNamespacedConfigMap({ name, namespace: NS })).data!['smtpserver.conf'];
        await kubectl(['patch', 'configmap', name, '-n', NS, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/data/smtpserver.conf', value: `${text}PARAM admin-token-sha256 ${digest}\n` }])]);
      }
    }
    let listed: Array<{ node: string; messages: Array<{ id: string; recipients: string[]; state: string }> }> = [];
    await waitUntil('queue list answers on both nodes', async () => {
      const r = await plugin('-n', NS, 'queue', 'list', '-o', 'json');
      if (r.code !== 0) return false;
      listed = (JSON.parse(r.stdout) as { nodes: typeof listed }).nodes;
      return listed.length === 2 && listed.every((n) => Array.isArray(n.messages));
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    const all = listed.flatMap((n) => n.messages.map((m) => ({ ...m, node: n.node })));
    assert.equal(all.length, 4);
    const target = all.find((m) => m.recipients[0] === 'user0@customer.example')!;
    const table = await plugin('-n', NS, 'queue', 'list');
    assert.match(table.stdout, /^NODE\s+ID\s+STATE\s+SIZE\s+RECEIVED\s+SENDER\s+RECIPIENTS\s+LAST ERROR$/m);
    const hold = await plugin('-n', NS, 'queue', 'hold', target.id);
    assert.equal(hold.code, 0, hold.stderr + hold.stdout);
    assert.match(hold.stdout, new RegExp(`${target.node}: ${target.id}: hold ok \\(held\\)`));
    const show = await plugin('-n', NS, 'queue', 'show', target.id);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /state: held/);
    assert.match(show.stdout, /X-Tag: e2e-0/);
    // the customer comes back and says ETRN to Addr[0]: everything but the held message goes
    await capture.start();
    const etrn = await plugin('-n', NS, 'etrn', 'customer.example');
    assert.equal(etrn.code, 0, etrn.stderr + etrn.stdout);
    await capture.waitForMessages(3, 30_000).catch(async (err) => {
      for (const i of [0, 1]) console.log((await kubectl(['logs', '-n', NS, `${MC}-${i}`]).catch((e) => ({ stdout: String(e) }))).stdout.split('\n').slice(-25).join('\n'));
      throw err;
    });
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(!capture.messages.some((m) => m.rcptTo.includes('user0@customer.example')), 'the held message stayed');
    const st = JSON.parse((await plugin('-n', NS, 'status', '-o', 'json')).stdout) as { nodes: Array<{ queue: number; held: number }> };
    assert.deepEqual([st.nodes.reduce((n, x) => n + x.queue, 0), st.nodes.reduce((n, x) => n + (x.held ?? 0), 0)], [1, 1]);
    const summary = await plugin('-n', NS, 'queue', 'summary');
    assert.equal(summary.code, 0, summary.stderr + summary.stdout);
    assert.match(summary.stdout, /^MailCluster relay \(2 of 2 node\(s\)\): total 1  held 1  deferred 0/m);
    assert.match(summary.stdout, /^customer\.example\s+1\s+1\s+1\s+0\s/m);
    const release = await plugin('-n', NS, 'queue', 'release', target.id);
    assert.equal(release.code, 0, release.stderr + release.stdout);
    await waitUntil('the released message delivered', () => capture.messages.some((m) => m.rcptTo.includes('user0@customer.example')), { timeoutMs: 30_000 });
    assert.equal(capture.messages.length, 4, 'each message delivered once');
    // drain one node by hand: it stops accepting and reports itself drained (its queue is empty)
    const drain = await plugin('-n', NS, 'drain', `${MC}-1`, '--wait');
    assert.equal(drain.code, 0, drain.stderr + drain.stdout);
    assert.match(drain.stdout, /relay-1: draining; 0 message\(s\) left/);
    const after = JSON.parse((await plugin('-n', NS, 'status', '-o', 'json')).stdout) as { nodes: Array<{ node: string; draining: boolean | null }> };
    assert.deepEqual(after.nodes.map((n) => [n.node, n.draining]), [[`${MC}-0`, false], [`${MC}-1`, true]]);
  });
});
