// bench:scale's pure pieces: flags, audit-log counting, the roll tracker (its "rolling at
// once" figure is what the roll is judged by), and that go.mod carries the bench's tools.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { benchToolsCacheKey } from '../../../local/src/controlplane/bench-tools.ts';
import { hollowNodeCount, parseScaleArgs } from '../../bench/scale/args.ts';
import { auditPolicy, parseAuditLine, peakPerSecond, summarize, sumMetric, metricDelta, type AuditRequest } from '../../bench/scale/audit.ts';
import { floorObjects } from '../../bench/scale/floor.ts';
import { RollTracker, type PodView } from '../../bench/scale/roll-tracker.ts';

describe('bench:scale pieces', () => {
  it('parses its flags and refuses bad ones', () => {
    assert.deepEqual({ ...parseScaleArgs([]) }.clusters, 1000);
    const a = parseScaleArgs(['--clusters', '100', '--replicas=3', '--no-roll', '--max-pods', '50']);
    assert.equal(a.clusters, 100);
    assert.equal(a.skipRoll, true);
    assert.equal(a.maxPods, 50);
    assert.throws(() => parseScaleArgs(['--clusters', '0']), /positive integer/);
    assert.throws(() => parseScaleArgs(['--clusters']), /positive integer/);
    assert.throws(() => parseScaleArgs(['--bogus']), /unknown flag/);
  });

  it('passes node flags and environment to the operator alone', () => {
    const a = parseScaleArgs(['--operator-node-arg', '--max-old-space-size=192', '--operator-node-arg=--optimize-for-size', '--operator-env', 'MALLOC_ARENA_MAX=1', '--operator-env=MALLOC_TRIM_THRESHOLD_=131072']);
    assert.deepEqual(a.operatorNodeArgs, ['--max-old-space-size=192', '--optimize-for-size']);
    assert.deepEqual(a.operatorEnv, { MALLOC_ARENA_MAX: '1', MALLOC_TRIM_THRESHOLD_: '131072' });
    assert.throws(() => parseScaleArgs(['--operator-node-arg', 'max-old-space-size=1']), /node flag/);
    assert.throws(() => parseScaleArgs(['--operator-env', 'NOVALUE']), /NAME=VALUE/);
    assert.throws(() => parseScaleArgs(['--operator-env']), /NAME=VALUE/);
  });

  it('plans enough hollow nodes for every pod, at least 3', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 1000 }), (pods, maxPods) => {
      const n = hollowNodeCount(pods, maxPods);
      assert.ok(n >= 3 && n * maxPods >= pods * 1.1 - 1e-9);
    }));
  });

  it('goes in go.mod, and its cache key follows go.mod and go.sum', () => {
    const goMod = readFileSync(new URL('../../../local/go/go.mod', import.meta.url), 'utf8');
    assert.match(goMod, /^\tk8s\.io\/kubernetes\/cmd\/kubemark$/m);
    assert.match(goMod, /^\tk8s\.io\/kubernetes\/cmd\/kube-scheduler$/m);
    const k = benchToolsCacheKey({ goMod: 'a', goSum: 'b' }, 'linux-x64');
    assert.match(k, /^kubernetes-v1\.36\.3-[0-9a-f]{16}$/);
    assert.notEqual(k, benchToolsCacheKey({ goMod: 'a', goSum: 'c' }, 'linux-x64'));
    assert.notEqual(k, benchToolsCacheKey({ goMod: 'ab', goSum: '' }, 'linux-x64'));
  });

  it('counts one request per audited request: completed ones, and watches when they start', () => {
    assert.match(auditPolicy('op'), /users: \["op"\]/);
    const line = (o: object) => JSON.stringify({ kind: 'Event', user: { username: 'op' }, userAgent: 'ua', requestReceivedTimestamp: '2026-11-30T08:00:00.123456Z', responseStatus: { code: 201 }, ...o });
    const created = parseAuditLine(line({ stage: 'ResponseComplete', verb: 'create', objectRef: { resource: 'pods' } }));
    assert.deepEqual(created, { at: Date.parse('2026-11-30T08:00:00.123Z'), verb: 'create', resource: 'pods', code: 201, user: 'op', userAgent: 'ua' });
    assert.equal(parseAuditLine(line({ stage: 'ResponseStarted', verb: 'watch', objectRef: { resource: 'pods' } }))?.verb, 'watch');
    assert.equal(parseAuditLine(line({ stage: 'ResponseComplete', verb: 'watch', objectRef: { resource: 'pods' } })), undefined);
    assert.equal(parseAuditLine(line({ stage: 'ResponseStarted', verb: 'get' })), undefined);
    assert.equal(parseAuditLine('{not json'), undefined);
    assert.equal(parseAuditLine(line({ stage: 'ResponseComplete', verb: 'patch', objectRef: { resource: 'mailclusters', subresource: 'status' } }))?.resource, 'mailclusters/status');
  });

  it('summarizes a window: totals, writes, codes, peak second', () => {
    const r = (at: number, verb: string, code = 200): AuditRequest => ({ at, verb, resource: 'pods', code, user: 'op', userAgent: '' });
    const reqs = [r(0, 'list'), r(100, 'create', 201), r(900, 'patch', 409), r(1500, 'get'), r(2000, 'delete'), r(5000, 'create')];
    const s = summarize(reqs, 0, 2000);
    assert.equal(s.total, 4);
    assert.equal(s.writes, 2);
    assert.deepEqual(s.byCode, { '2xx': 3, 409: 1 });
    assert.equal(s.perSecond, 2);
    assert.equal(peakPerSecond(reqs, 0, 2000), 3);
  });

  it('reads and subtracts Prometheus counters', () => {
    const before = sumMetric('a_total{verb="GET",code="200"} 3\na_total{verb="POST",code="201"} 1\na_total_other 9\n', 'a_total', ['verb']);
    const after = sumMetric('# HELP a_total x\na_total{verb="GET",code="200"} 5\na_total{verb="GET",code="404"} 1\na_total{verb="POST",code="201"} 1\n', 'a_total', ['verb']);
    assert.deepEqual([...metricDelta(before, after)], [['GET', 3]]);
    assert.equal(sumMetric('g 4\n', 'g').get(''), 4);
  });

  it('counts clusters rolling at once from pod events, whatever their order', () => {
    // Each cluster rolls its 3 pods one at a time (drain, delete, new pod, ready); clusters
    // are interleaved at random; the tracker's maximum must equal the true overlap.
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 20 })), { minLength: 1, maxLength: 8 }), (plan) => {
      const t = new RollTracker('new', 3);
      const pod = (c: number, i: number, image: string, ready: boolean, role = 'serving', deleted = false): PodView => ({ namespace: 'n', name: `c${c}-${i}`, cluster: `c${c}`, image, ready, role, deleted });
      plan.forEach((_, c) => { for (let i = 0; i < 3; i++) t.seed(pod(c, i, 'old', true)); });
      const events: Array<[number, PodView]> = [];
      const spans: Array<[number, number]> = [];
      plan.forEach(([start, step], c) => {
        // no two clusters share a time: at a tie the true overlap would depend on the order
        const off = c / 100;
        let now = start * 10;
        const first = now;
        for (let i = 2; i >= 0; i--) {
          events.push([off + now++, pod(c, i, 'old', true, 'draining')]);
          events.push([off + now++, pod(c, i, 'old', true, 'draining', true)]);
          events.push([off + now++, pod(c, i, 'new', false)]);
          now += step;
          events.push([off + now++, pod(c, i, 'new', true)]);
        }
        spans.push([off + first, off + now - 1]);
      });
      events.sort((a, b) => a[0] - b[0]);
      for (const [now, p] of events) t.observe(p, now);
      assert.equal(t.done, plan.length);
      assert.equal(t.active, 0);
      let want = 0;
      for (const [s] of spans) want = Math.max(want, spans.filter(([a, b]) => a <= s && s <= b).length);
      assert.equal(t.maxActive, want);
    }));
  });
  it('--floor creates everything the operator\'s pods refer to, and no owner the garbage collector would act on', () => {
    assert.equal(parseScaleArgs(['--floor']).floor, true);
    assert.equal(parseScaleArgs(['--floor']).skipRoll, true);
    const { needs, pods } = floorObjects('ns', 'mc', { replicas: 3, image: 'mailcluster/node:0.1.0', storage: { size: '1Gi', storageClassName: 'bench-static' } });
    assert.equal(pods.length, 3);
    const have = new Set(needs.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const pod of pods as any[]) {
      assert.equal(pod.metadata.ownerReferences, undefined);
      assert.equal(pod.metadata.labels['app.kubernetes.io/managed-by'], 'mailcluster-operator');
      const wanted = [`ServiceAccount/${pod.spec.serviceAccountName}`];
      for (const v of pod.spec.volumes) {
        if (v.persistentVolumeClaim) wanted.push(`PersistentVolumeClaim/${v.persistentVolumeClaim.claimName}`);
        if (v.secret) wanted.push(`Secret/${v.secret.secretName}`);
        for (const src of v.projected?.sources ?? []) {
          if (src.configMap) wanted.push(`ConfigMap/${src.configMap.name}`);
          if (src.secret) wanted.push(`Secret/${src.secret.name}`);
        }
      }
      for (const w of wanted) assert.ok(have.has(w), `${pod.metadata.name} needs ${w}`);
      // every projected key is there (the kubelet fails a projected volume with a missing key)
      for (const src of pod.spec.volumes.find((v: any) => v.projected).projected.sources) {
        const ref = src.configMap ?? src.secret;
        const obj: any = needs.find((o) => o.kind === (src.configMap ? 'ConfigMap' : 'Secret') && o.metadata.name === ref.name);
        for (const item of ref.items) assert.ok(item.key in obj.data, `${ref.name} has ${item.key}`);
      }
    }
    for (const o of needs) assert.equal(o.metadata.ownerReferences, undefined);
    assert.deepEqual(needs.filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata.name), ['mc-0-spool', 'mc-1-spool', 'mc-2-spool']);
  });
});
