// The operator-wide pace of pod-template rollouts (--max-concurrent-rollouts): the planner
// decides from an allowance (cluster_roll.ts), the edge keeps the slots (rollout-slots.ts) and,
// after an operator restart, finds them again from observed state alone. A fleet of simulated
// clusters (the planner's fixture world) gets a new pod template; random reconciles, pods
// starting late and operator restarts never have more clusters rolling than the limit — counted
// independently, from the first pod taken out for the new template until every pod runs it and
// is Ready — and every cluster ends on the new template.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ObservedPod } from '../../../operator/src/controller/observed.ts';
import { plan } from '../../../operator/src/controller/plan.ts';
import { RolloutSlots } from '../../../operator/src/controller/rollout-slots.ts';
import { convergedWorld, mailCluster, World } from './fixtures.ts';

const NEW_IMAGE = 'mailcluster/node:0.9.0';

const podsOf = (w: World): ObservedPod[] => (w.list('Pod') as ObservedPod[]);
const imageOf = (p: ObservedPod): string => (p as unknown as { spec: { containers: Array<{ image: string }> } }).spec.containers[0].image;
const ready = (p: ObservedPod): boolean => Boolean(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
const progressing = (w: World): string | undefined => w.cluster.status?.conditions?.find((c) => c.type === 'Progressing')?.reason;

class Fleet {
  readonly worlds: World[];
  slots!: RolloutSlots;
  readonly woken: string[] = [];
  /** Independent bookkeeping: a cluster started rolling once one of its pods was taken out for the new template. */
  readonly started: boolean[];
  maxSeen = 0;
  readonly reasons = new Set<string>();

  readonly size: number;
  readonly max: number;

  constructor(size: number, max: number, replicas: number) {
    this.size = size;
    this.max = max;
    this.worlds = Array.from({ length: size }, () => convergedWorld(replicas));
    for (const w of this.worlds) w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, image: NEW_IMAGE }, metadata: { ...w.cluster.metadata, generation: 2 } };
    this.started = this.worlds.map(() => false);
    this.restart();
  }

  key(k: number): string { return `mail/c${k}`; }

  /** A new operator process: slots read from every cluster before any reconcile. */
  restart(): void {
    this.slots = new RolloutSlots(this.max, (key) => this.woken.push(key));
    this.worlds.forEach((w, k) => {
      const o = w.observed();
      o.rolloutAllowed = false;
      this.slots.record(this.key(k), plan(o).rollout);
    });
  }

  reconcile(k: number): void {
    const w = this.worlds[k];
    const o = w.observed();
    o.rolloutAllowed = this.slots.allowed(this.key(k));
    const p = plan(o);
    this.slots.record(this.key(k), p.rollout);
    if (p.patchPods.some((x) => x.labels?.['mailcluster.io/role'] === 'draining') || p.delete.some((d) => d.kind === 'Pod')) this.started[k] = true;
    w.apply(p);
    for (const d of p.drain) w.queues[d.pod] = { total: 0, draining: true, drained: true };
    this.reasons.add(progressing(w) ?? '');
  }

  done(k: number): boolean {
    const w = this.worlds[k];
    const pods = podsOf(w);
    return pods.length === (w.cluster.spec.replicas ?? 3) && pods.every((p) => imageOf(p) === NEW_IMAGE && ready(p) && p.metadata.labels?.['mailcluster.io/role'] === 'serving');
  }

  check(): void {
    const rolling = this.worlds.map((_, k) => this.started[k] && !this.done(k)).filter(Boolean).length;
    this.maxSeen = Math.max(this.maxSeen, rolling);
    assert.ok(rolling <= this.max, `${rolling} clusters rolling at once, limit ${this.max}`);
  }
}

type Step = { t: 'reconcile'; k: number } | { t: 'run'; k: number } | { t: 'restart' };

describe('operator rollouts: --max-concurrent-rollouts', () => {
  it('RolloutSlots: at most max hold a slot; a freed slot wakes the first waiting cluster, and is kept for it', () => {
    const woken: string[] = [];
    const s = new RolloutSlots(2, (k) => woken.push(k));
    assert.ok(s.allowed('a')); s.record('a', 'rolling');
    assert.ok(s.allowed('b')); s.record('b', 'rolling');
    assert.equal(s.allowed('c'), false); s.record('c', 'waiting');
    assert.equal(s.allowed('d'), false); s.record('d', 'waiting');
    assert.ok(s.allowed('a'), 'a cluster holding a slot keeps it');
    s.record('a', undefined); // a is done
    assert.deepEqual(woken, ['c'], 'the first to wait is woken, only one per freed slot');
    assert.equal(s.allowed('d'), false, 'the freed slot is kept for the woken cluster');
    assert.equal(s.allowed('e'), false);
    assert.ok(s.allowed('c'));
    s.record('c', 'rolling');
    s.forget('b');
    assert.deepEqual(woken, ['c', 'd']);
    s.record('d', undefined); // d no longer needs it (its spec went back): the slot goes to the next
    assert.ok(s.allowed('e'));
    assert.equal(s.inProgress, 1);
    assert.throws(() => new RolloutSlots(0, () => {}), /positive integer/);
  });

  it('the planner starts a rollout only with the allowance, continues one in progress without it, and says why it waits', () => {
    const w = convergedWorld(3);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, image: NEW_IMAGE } };
    const waiting = (() => { const o = w.observed(); o.rolloutAllowed = false; return plan(o); })();
    assert.equal(waiting.rollout, 'waiting');
    assert.deepEqual([waiting.patchPods, waiting.drain, waiting.delete], [[], [], []], 'nothing taken out without a slot');
    w.apply(waiting);
    assert.equal(progressing(w), 'RolloutPending');
    const again = (() => { const o = w.observed(); o.rolloutAllowed = false; return plan(o); })();
    assert.equal(again.status, undefined, 'waiting writes its status once, not on every pass');
    const go = plan(w.observed());
    assert.equal(go.rollout, 'rolling');
    assert.deepEqual(go.patchPods.map((p) => p.name), ['mc-2']);
    w.apply(go);
    const o = w.observed();
    o.rolloutAllowed = false; // another process's view, say: it is rolling already
    assert.equal(plan(o).rollout, 'rolling', 'a rollout in progress is read from the pods and continues');
  });

  it('holds its slot while the last rolled pod is terminating and until its replacement is Ready (bench:scale saw 65 rolling at a limit of 50)', () => {
    const w = convergedWorld(3);
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, image: NEW_IMAGE } };
    const seen: Array<string | undefined> = [];
    // Deleted pods stay a while, terminating, as on a real API server (the fixture removes them at once).
    const step = (): void => {
      const p = plan(w.observed());
      seen.push(p.rollout);
      const going = p.delete.filter((d) => d.kind === 'Pod').map((d) => structuredClone(w.get('Pod', d.name)!));
      w.apply(p);
      for (const pod of going) {
        pod.metadata.deletionTimestamp = w.now.toISOString() as never;
        w.objects.set(`Pod/${pod.metadata.name}`, pod);
        const terminating = plan(w.observed());
        assert.equal(terminating.rollout, 'rolling', `${pod.metadata.name} terminating after its roll: the cluster still rolls (${podsOf(w).map((x) => x.metadata.name).join(', ')})`);
        w.apply(terminating);
        w.objects.delete(`Pod/${pod.metadata.name}`);
      }
    };
    for (let n = 0; n < 60 && !(podsOf(w).length === 3 && podsOf(w).every((p) => imageOf(p) === NEW_IMAGE && ready(p)) && progressing(w) === 'Converged'); n++) {
      step();
      for (const pod of podsOf(w)) {
        if (pod.metadata.labels?.['mailcluster.io/role'] === 'draining') w.report(pod.metadata.name, 0);
      }
      const created = podsOf(w).find((p) => !p.status?.podIP);
      if (created) {
        // the replacement exists but is not Ready yet: still rolling
        const notReady = plan(w.observed());
        assert.equal(notReady.rollout, 'rolling', `${created.metadata.name} created, not Ready yet: still rolling`);
        w.apply(notReady);
        w.runAll();
      }
    }
    assert.ok(podsOf(w).every((p) => imageOf(p) === NEW_IMAGE && ready(p)), 'every pod on the new template');
    assert.equal(plan(w.observed()).rollout, undefined, 'and the slot is freed once all are Ready');
  });

  it('never more clusters rolling than the limit, through random reconciles, late pods and operator restarts; all finish', () => {
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ t: fc.constant('reconcile' as const), k: fc.integer({ min: 0, max: 5 }) }) },
      { weight: 4, arbitrary: fc.record({ t: fc.constant('run' as const), k: fc.integer({ min: 0, max: 5 }) }) },
      { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
    );
    let peak = 0;
    const reasons = new Set<string>();
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.array(step, { maxLength: 100 }), (max, steps) => {
      const f = new Fleet(6, max, 2);
      for (const s of steps) {
        if (s.t === 'reconcile') f.reconcile(s.k);
        else if (s.t === 'run') f.worlds[s.k].runAll();
        else f.restart();
        f.check();
      }
      for (let round = 0; round < 200 && !f.worlds.every((_, k) => f.done(k)); round++) {
        for (let k = 0; k < f.size; k++) { f.reconcile(k); f.check(); f.worlds[k].runAll(); f.check(); }
        if (round % 7 === 3) f.restart();
      }
      assert.ok(f.worlds.every((_, k) => f.done(k)), 'every cluster ends on the new template');
      peak = Math.max(peak, f.maxSeen);
      for (const r of f.reasons) reasons.add(r);
    }), { numRuns: 25 });
    assert.ok(peak >= 2, `the limit was reached (peak ${peak})`);
    assert.ok(reasons.has('RolloutPending') && reasons.has('Rolling'), [...reasons].join());
  });
});
