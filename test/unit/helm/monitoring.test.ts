// The chart's monitoring objects (issue 14), rendered by the real helm binary: the
// PrometheusRule, the node PodMonitor and the Grafana dashboard ConfigMap are off by
// default and render when enabled. Every alert expression and every dashboard query is
// parsed by the Prometheus project's own PromQL grammar (@prometheus-io/lezer-promql, the
// parser of the Prometheus UI; promtool itself is not built: its Go module is large), and
// every metric name they use must be one the node or the operator exports.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { parser } from '@prometheus-io/lezer-promql';
import { ensureHelm, helmOk, runHelm, type Helm } from '../../../local/src/tools/helm.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const chartDir = `${root}helm/mailcluster-operator`;

interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: unknown }
interface AlertRule { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> }

/** Syntax errors of a PromQL expression (positions where the grammar found an error node). */
export function promqlErrors(expr: string): string[] {
  const tree = parser.parse(expr);
  const errors: string[] = [];
  tree.iterate({ enter: (n) => { if (n.type.isError) errors.push(`at ${n.from}: ${JSON.stringify(expr.slice(Math.max(0, n.from - 15), n.from + 15))}`); } });
  if (expr.trim() === '') errors.push('empty expression');
  return errors;
}

/** Metric names (identifiers) a PromQL expression selects. */
function metricNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  tree.iterate({ enter: (n) => { if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.push(expr.slice(n.from, n.to)); } });
  return names;
}

/** Every `mailcluster_*` metric the code registers (node, queue gauges, operator). */
function exportedMetrics(): Set<string> {
  const files = ['node-image/src/admin/metrics.ts', 'node-image/src/admin/queue-api.ts', 'operator/src/controller/metrics.ts'];
  const out = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(root + f, 'utf8').matchAll(/name: '(mailcluster_[a-z0-9_]+)'/g)) {
      out.add(m[1]);
      if (/Histogram/.test(readFileSync(root + f, 'utf8'))) for (const s of ['_bucket', '_sum', '_count']) out.add(m[1] + s);
    }
  }
  return out;
}

describe('helm chart: PrometheusRule, node PodMonitor, Grafana dashboard (issue 14)', function () {
  this.timeout(30 * 60_000); // a cold helm build
  let helm: Helm;
  before(async () => { helm = await ensureHelm(); });
  this.timeout(60_000);

  async function template(...set: string[]): Promise<K8sObject[]> {
    const args = ['template', 'mc', chartDir, '--namespace', 'mail-system'];
    for (const s of set) args.push('--set', s);
    return yaml.loadAll(await helmOk(helm, args)).filter((d): d is K8sObject => d !== null && typeof d === 'object');
  }

  it('the PromQL check itself catches broken expressions', () => {
    assert.deepEqual(promqlErrors('sum by (namespace) (rate(mailcluster_messages_delivered_total[5m])) > 0.5'), []);
    for (const bad of ['sum by (namespace (x)', 'rate(x[5m]', 'x > > 1', 'max(x) == 1 for 5m', '']) assert.notDeepEqual(promqlErrors(bad), [], bad);
  });

  it('renders none of them by default', async () => {
    const kinds = (await template()).map((o) => `${o.kind}/${o.metadata.name}`);
    assert.ok(!kinds.some((k) => /^(PrometheusRule|PodMonitor)\//.test(k) || k.endsWith('-dashboard')), kinds.join(' '));
  });

  it('renders the rule with five alerts whose expressions parse and use only exported metrics', async () => {
    const objects = await template('metrics.prometheusRule.enabled=true', 'metrics.prometheusRule.labels.release=kps', 'metrics.prometheusRule.alertLabels.team=mail',
      'metrics.prometheusRule.oldestMessage.maxAgeSeconds=7200');
    const rule = objects.find((o) => o.kind === 'PrometheusRule');
    assert.ok(rule, 'a PrometheusRule');
    assert.equal(rule.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(rule.metadata.namespace, 'mail-system');
    assert.equal(rule.metadata.labels?.release, 'kps');
    const rules = ((rule as unknown as { spec: { groups: Array<{ name: string; rules: AlertRule[] }> } }).spec.groups).flatMap((g) => g.rules);
    assert.deepEqual(rules.map((r) => r.alert).sort(), ['MailClusterDeliveryFailureRatioHigh', 'MailClusterNodeDrainingTooLong', 'MailClusterOldestMessageTooOld', 'MailClusterOperatorNotLeading', 'MailClusterQueueGrowing']);
    const exported = exportedMetrics();
    assert.ok(exported.has('mailcluster_queue_oldest_message_age_seconds') && exported.has('mailcluster_operator_leader'));
    for (const r of rules) {
      assert.deepEqual(promqlErrors(r.expr), [], `${r.alert}: ${r.expr}`);
      for (const name of metricNames(r.expr)) assert.ok(exported.has(name), `${r.alert} uses ${name}, which nothing exports`);
      assert.match(r.for ?? '', /^\d+[smh]$/);
      assert.ok(['warning', 'critical'].includes(r.labels.severity));
      assert.equal(r.labels.team, 'mail');
      assert.ok(r.annotations.summary && r.annotations.description);
      // alert templates reach Prometheus as {{ $labels.x }}, not eaten by helm
      assert.ok(!/\{\{\s*"/.test(r.annotations.summary), r.annotations.summary);
    }
    const oldest = rules.find((r) => r.alert === 'MailClusterOldestMessageTooOld')!;
    assert.match(oldest.expr, /mailcluster_queue_oldest_message_age_seconds\) > 7200/);
    assert.match(oldest.annotations.summary, /\{\{ \$labels\.pod \}\}/);
    assert.match(rules.find((r) => r.alert === 'MailClusterOperatorNotLeading')!.expr, /namespace="mail-system"/);
  });

  it('each alert can be switched off; bad thresholds are refused by the schema', async () => {
    const objects = await template('metrics.prometheusRule.enabled=true', 'metrics.prometheusRule.queueGrowing.enabled=false', 'metrics.prometheusRule.operatorNotLeading.enabled=false');
    const rule = objects.find((o) => o.kind === 'PrometheusRule') as unknown as { spec: { groups: Array<{ rules: AlertRule[] | null }> } };
    assert.deepEqual(rule.spec.groups.flatMap((g) => g.rules ?? []).map((r) => r.alert).sort(), ['MailClusterDeliveryFailureRatioHigh', 'MailClusterNodeDrainingTooLong', 'MailClusterOldestMessageTooOld']);
    for (const [set, key] of [
      ['metrics.prometheusRule.deliveryFailureRatio.ratio=2', 'ratio'],
      ['metrics.prometheusRule.oldestMessage.for=ten', 'for'],
      ['metrics.prometheusRule.queueGrowing.severity=page', 'severity'],
      ['metrics.prometheusRule.colour=red', 'colour'],
      ['metrics.grafanaDashboard.namespace=Bad_NS', 'namespace'],
    ]) {
      const r = await runHelm(helm, ['template', 'mc', chartDir, '--set', 'metrics.prometheusRule.enabled=true', '--set', set]);
      assert.notEqual(r.code, 0, set);
      assert.match(r.stderr, new RegExp(key), `${set}: ${r.stderr}`);
    }
  });

  it('renders the node PodMonitor: admin port, cluster labels, watched namespaces', async () => {
    const all = (await template('metrics.nodePodMonitor.enabled=true')).find((o) => o.kind === 'PodMonitor') as unknown as { spec: Record<string, unknown> } & K8sObject;
    assert.deepEqual(all.spec.namespaceSelector, { any: true });
    assert.deepEqual((all.spec.podMetricsEndpoints as Array<{ port: string; path: string }>).map((e) => [e.port, e.path]), [['admin', '/metrics']]);
    assert.ok((all.spec.podTargetLabels as string[]).includes('mailcluster.io/cluster'));
    assert.equal((all.spec.selector as { matchLabels: Record<string, string> }).matchLabels['app.kubernetes.io/name'], 'mailcluster-node');
    const some = (await template('metrics.nodePodMonitor.enabled=true', 'watchNamespaces={mail-a,mail-b}')).find((o) => o.kind === 'PodMonitor') as unknown as { spec: Record<string, unknown> };
    assert.deepEqual(some.spec.namespaceSelector, { matchNames: ['mail-a', 'mail-b'] });
  });

  it('renders the dashboard ConfigMap with the sidecar label; its JSON is valid and every query parses', async () => {
    const objects = await template('metrics.grafanaDashboard.enabled=true', 'metrics.grafanaDashboard.annotations.grafana_folder=Mail', 'metrics.grafanaDashboard.namespace=monitoring');
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard')) as K8sObject & { data: Record<string, string> };
    assert.ok(cm);
    assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
    assert.equal(cm.metadata.annotations?.grafana_folder, 'Mail');
    assert.equal(cm.metadata.namespace, 'monitoring');
    const dashboard = JSON.parse(cm.data['mailcluster-overview.json']) as { uid: string; panels: Array<{ title: string; targets: Array<{ expr: string; legendFormat: string }> }> };
    assert.equal(dashboard.uid, 'mailcluster-overview');
    const files = readdirSync(`${chartDir}/files/dashboards`);
    assert.deepEqual(files, ['mailcluster-overview.json']);
    assert.deepEqual(dashboard, JSON.parse(readFileSync(`${chartDir}/files/dashboards/mailcluster-overview.json`, 'utf8')), 'the file as is (legend {{pod}} not eaten by helm)');
    const exported = exportedMetrics();
    const titles = new Set<string>();
    for (const p of dashboard.panels) {
      assert.ok(!titles.has(p.title), `duplicate panel ${p.title}`);
      titles.add(p.title);
      for (const t of p.targets) {
        // Grafana's variables are substituted before Prometheus sees the query
        const expr = t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', 'ns').replaceAll('$cluster', 'mc');
        assert.deepEqual(promqlErrors(expr), [], `${p.title}: ${t.expr}`);
        for (const name of metricNames(expr)) assert.ok(exported.has(name), `${p.title} uses ${name}, which nothing exports`);
      }
    }
    assert.ok(dashboard.panels.some((p) => p.targets.some((t) => t.expr.includes('mailcluster_queue_oldest_message_age_seconds'))));
  });

  it('passes helm lint --strict with everything enabled', async () => {
    await helmOk(helm, ['lint', '--strict', chartDir, '--set', 'metrics.prometheusRule.enabled=true', '--set', 'metrics.nodePodMonitor.enabled=true', '--set', 'metrics.grafanaDashboard.enabled=true']);
  });
});

describe('examples/keda-scaledobject.yaml (issue 14)', () => {
  it('targets the MailCluster\'s scale subresource and its query parses and uses exported metrics', () => {
    const so = yaml.load(readFileSync(`${root}examples/keda-scaledobject.yaml`, 'utf8')) as {
      apiVersion: string; kind: string;
      spec: { scaleTargetRef: { apiVersion: string; kind: string; name: string }; minReplicaCount: number; triggers: Array<{ type: string; metadata: { query: string; threshold: string } }> };
    };
    assert.equal(so.apiVersion, 'keda.sh/v1alpha1');
    assert.equal(so.kind, 'ScaledObject');
    assert.deepEqual(so.spec.scaleTargetRef, { apiVersion: 'mailcluster.io/v1alpha1', kind: 'MailCluster', name: 'smtp' });
    assert.ok(so.spec.minReplicaCount >= 1, 'never scaled to zero: Addr[0] must answer');
    const crd = yaml.load(readFileSync(`${root}crds/mailclusters.mailcluster.io.yaml`, 'utf8')) as { spec: { versions: Array<{ name: string; subresources?: { scale?: Record<string, string> } }> } };
    assert.deepEqual(crd.spec.versions.find((v) => v.name === 'v1alpha1')?.subresources?.scale,
      { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
    const [trigger] = so.spec.triggers;
    assert.equal(trigger.type, 'prometheus');
    assert.deepEqual(promqlErrors(trigger.metadata.query), []);
    const exported = exportedMetrics();
    for (const name of metricNames(trigger.metadata.query)) assert.ok(exported.has(name), name);
    assert.ok(Number(trigger.metadata.threshold) > 0);
  });
});
