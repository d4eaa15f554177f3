// Issue 13 on the real control plane: one operator, many MailClusters, no reconcile storms.
// 50 MailClusters of one real mail node each (pods of the node image on the real kubelet; one
// node per cluster keeps 50 nodes within a shared 2-core machine) reach Ready; then a quiet minute makes no API
// writes at all — counted by the operator's own mailcluster_operator_api_requests_total and,
// independently, by the API server's apiserver_request_total for what only the operator writes;
// then a change to one cluster reconciles that cluster only (reconciles per cluster from the
// operator's debug log, one line per reconcile). MAILCLUSTER_SCALE_CLUSTERS and
// MAILCLUSTER_QUIET_MS shorten it. The shared test cluster's load balancers are 127.51/16;
// this suite binds nothing of its own. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kubeletSuitesWanted } from '../../support/local-cluster.ts';
import type { LocalCluster } from '../../../local/src/index.ts';
import { sleep } from '../../support/processes.ts';
import { conditionOf, inNode, mailClusterObject, startOperator, waitUntil, type Clients, type OperatorProcess, sharedClusterWithCrd } from './harness.ts';


const NS = `op-scale-${randomBytes(3).toString('hex')}`;
const CLUSTERS = Number(process.env.MAILCLUSTER_SCALE_CLUSTERS ?? 50);
const QUIET_MS = Number(process.env.MAILCLUSTER_QUIET_MS ?? 60_000);
const WRITE_VERBS = new Set(['create', 'update', 'patch', 'apply', 'delete', 'deletecollection']);
const name = (i: number): string => `mc${String(i).padStart(3, '0')}`;

/** Sums of a Prometheus text exposition's samples of `metric` whose labels pass `keep`. */
function sumSamples(text: string, metric: string, keep: (labels: Record<string, string>) => boolean): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:]+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== metric) continue;
    const labels: Record<string, string> = {};
    for (const kv of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    if (keep(labels)) total += Number(m[3]);
  }
  return total;
}

(kubeletSuitesWanted() ? describe : describe.skip)(`operator at scale: ${CLUSTERS} MailClusters, one operator (local Kubernetes with a real kubelet, real mail nodes; root)`, function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let c: Clients;
  let operator: OperatorProcess;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input === undefined ? { timeoutMs: 120_000 } : { input, timeoutMs: 120_000 });
  const listClusters = async (): Promise<any[]> =>
    ((await c.custom.listNamespacedCustomObject({ group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters', namespace: NS })) as any).items;
  const isReady = (mc: any): boolean => conditionOf(mc, 'Ready')?.status === 'True' && conditionOf(mc, 'Progressing')?.status === 'False'
    && mc.status?.observedGeneration === mc.metadata.generation && mc.status?.readyReplicas === mc.spec.replicas;
  /** The operator's write requests to the API server, from its own counter. */
  const operatorWrites = async (): Promise<number> =>
    sumSamples(await operator.scrape(), 'mailcluster_operator_api_requests_total', (l) => WRITE_VERBS.has(l.verb));
  /**
   * The API server's own count of writes to what only the operator writes in a quiet cluster:
   * MailClusters (status included) and the main resource (no subresource: the kubelet writes
   * pods/status, the disruption controller poddisruptionbudgets/status) of each child kind.
   * apiserver_request_total has no client label, so this counts every client; none other writes these.
   */
  const apiServerWrites = async (): Promise<number> => {
    const text = (await kubectl(['get', '--raw', '/metrics'])).stdout;
    const children = new Set(['pods', 'configmaps', 'persistentvolumeclaims', 'secrets', 'services', 'poddisruptionbudgets', 'networkpolicies']);
    return sumSamples(text, 'apiserver_request_total', (l) => ['APPLY', 'CREATE', 'UPDATE', 'PATCH', 'DELETE', 'DELETECOLLECTION', 'POST', 'PUT'].includes(l.verb)
      && (l.resource === 'mailclusters' || (children.has(l.resource) && (l.subresource ?? '') === '')));
  };
  /** Reconciles per cluster in the operator's log after the line `marker` (debug: one `reconcile` line each). */
  function reconcilesAfter(marker: string): Map<string, number> {
    const text = operator.logs();
    const at = text.indexOf(marker);
    assert.ok(at >= 0, 'the marker line is still in the kept log tail');
    const counts = new Map<string, number>();
    for (const line of text.slice(at + marker.length).split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; cluster?: string };
        if (entry.msg === 'reconcile' && entry.cluster) counts.set(entry.cluster, (counts.get(entry.cluster) ?? 0) + 1);
      } catch { /* a partial line at the tail's start */ }
    }
    return counts;
  }
  const lastLogLine = (): string => operator.logs().trimEnd().split('\n').pop() ?? '';

  before(async function () {
    this.timeout(600_000);
    ({ cluster, c } = await sharedClusterWithCrd());
    await kubectl(['create', 'namespace', NS]);
    // --secret-resync 60m: the operator writes each Secret again once per resync period (it cannot
    // read them back, README "Secret writes without reads"); the default 10 minutes could fall
    // into this suite's quiet minute. That periodic write is a known, separate steady cost.
    operator = await startOperator(cluster.kubeconfigPath, ['--namespace', NS, '--log-level', 'debug', '--secret-resync', '60m'], inNode(cluster.kubeletNode!));
  });

  after(async function () {
    this.timeout(300_000);
    if (cluster) await kubectl(['delete', 'mc', '--all', '-n', NS, '--wait=true', '--timeout=240s']).catch(() => undefined);
    await operator?.stop();
    if (cluster) await kubectl(['delete', 'namespace', NS, '--wait=false']).catch(() => undefined);
  });

  it(`${CLUSTERS} MailClusters of one node each reach Ready`, async function () {
    this.timeout(900_000);
    const started = Date.now();
    const docs = Array.from({ length: CLUSTERS }, (_, i) => JSON.stringify(mailClusterObject(NS, name(i), {
      replicas: 1, hostname: `smtp${i}.isp.example`, relayDomains: [`customer${i}.example`],
    }))).join('\n---\n');
    await kubectl(['apply', '-f', '-'], docs);
    let ready = 0;
    await waitUntil(`${CLUSTERS} MailClusters Ready`, async () => {
      ready = (await listClusters()).filter(isReady).length;
      return ready === CLUSTERS;
    }, { timeoutMs: 780_000, intervalMs: 2000, abort: () => (operator.child.exitCode !== null ? `operator exited ${operator.child.exitCode}` : undefined) });
    const reconciles = await operator.metric('mailcluster_operator_reconciles_total');
    const writes = await operatorWrites();
    console.log(`      ${CLUSTERS} Ready in ${((Date.now() - started) / 1000).toFixed(0)} s: ${reconciles} reconciles, ${writes} API writes (${(writes / CLUSTERS).toFixed(1)} per cluster)`);
  });

  it(`makes no API writes in a quiet ${QUIET_MS / 1000} s once converged (the operator's count and the API server's)`, async function () {
    this.timeout(QUIET_MS + 180_000);
    // Converged: every cluster Ready, and nothing written for a few seconds (last status writes, watch echoes).
    let before = await operatorWrites();
    await waitUntil('no writes for 5 s', async () => {
      await sleep(5000);
      const now = await operatorWrites();
      const still = now === before;
      before = now;
      return still;
    }, { timeoutMs: 120_000, intervalMs: 0 });
    const ops0 = await operatorWrites();
    const api0 = await apiServerWrites();
    const reconciles0 = await operator.metric('mailcluster_operator_reconciles_total');
    const requests0 = await operator.metricSum('mailcluster_operator_api_requests_total');
    await sleep(QUIET_MS);
    const ops = (await operatorWrites()) - ops0;
    const api = (await apiServerWrites()) - api0;
    const reconciles = (await operator.metric('mailcluster_operator_reconciles_total')) - reconciles0;
    const requests = (await operator.metricSum('mailcluster_operator_api_requests_total')) - requests0;
    const notReady = (await listClusters()).filter((mc) => !isReady(mc)).map((mc) => mc.metadata.name);
    console.log(`      quiet ${QUIET_MS / 1000} s over ${CLUSTERS} clusters: ${ops} writes (operator), ${api} writes (API server), ${reconciles} reconciles, ${requests} API requests of any verb (watches included)`);
    assert.deepEqual(notReady, [], 'every cluster stayed Ready');
    assert.equal(ops, 0, 'the operator wrote nothing');
    assert.equal(api, 0, 'the API server saw no write to MailClusters or their children');
  });

  it('a change to one cluster reconciles that cluster only', async function () {
    this.timeout(180_000);
    const target = name(7);
    const marker = lastLogLine();
    const writes0 = await operatorWrites();
    await c.custom.patchNamespacedCustomObject({
      group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters', namespace: NS, name: target,
      body: [{ op: 'add', path: '/spec/relayDomains/-', value: 'added.example' }],
    });
    await waitUntil(`${target}'s ConfigMap names the added domain and its status the new generation`, async () => {
      const cm = await c.core.readNamespacedConfigMap({ namespace: NS, name: `${target}-0-config` });
      const mc = (await listClusters()).find((x) => x.metadata.name === target);
      return (cm.data?.['smtpserver.conf'] ?? '').includes('PARAM relay-domain added.example') && isReady(mc);
    }, { timeoutMs: 60_000, intervalMs: 250 });
    await sleep(5000); // watch echoes of its own writes
    const counts = reconcilesAfter(marker);
    const writes = (await operatorWrites()) - writes0;
    const others = [...counts].filter(([k]) => k !== `${NS}/${target}`);
    console.log(`      one spec change: ${counts.get(`${NS}/${target}`) ?? 0} reconciles of ${target}, ${others.length} other clusters reconciled, ${writes} API writes`);
    assert.ok((counts.get(`${NS}/${target}`) ?? 0) > 0, `${target} was reconciled`);
    assert.deepEqual(others, [], 'no other cluster was reconciled');
  });
});
