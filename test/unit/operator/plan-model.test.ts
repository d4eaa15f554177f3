// A model-based property test of the planner. A simulated world — API objects, a kubelet whose
// pods get their address late, nodes that take mail onto their spool claim, drain it, restart
// and forget they were draining — is driven by random event sequences; every operator pass
// runs the real plan() on what the world shows and carries the plan out (possibly only a part
// of it: the operator may die mid-pass). Mail lives on a claim's volume, keyed by the claim's
// UID: a claim deleted and created again is a new, empty volume.
//
// Safety, checked at every step: no spool claim is deleted while it holds mail, nor without a
// node on that very claim having reported itself drained; a ledger shows every acknowledged
// message delivered or still on a live claim. Liveness: once faults stop and nodes can
// deliver, the world converges to the desired replicas with every surplus claim gone.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { KObject, ObservedPod, QueueProbe } from '../../../operator/src/controller/observed.ts';
import { plan, type Plan } from '../../../operator/src/controller/plan.ts';
import { DRAIN_ANSWER_MAX_AGE_MS, restartsOf } from '../../../operator/src/controller/claims.ts';
import { mailCluster, World } from './fixtures.ts';

interface Node { podUid: string; claimUid: string; draining: boolean; sessions: number }

type Event =
  | { t: 'mail'; n: number }
  | { t: 'ip'; i: number }
  | { t: 'ready'; i: number }
  | { t: 'evict'; i: number }
  | { t: 'forceDelete'; i: number }
  | { t: 'finalize' }
  | { t: 'nodeRestart'; i: number }
  | { t: 'session'; i: number; open: boolean }
  | { t: 'handoff'; i: number }
  | { t: 'handoffAll' }
  | { t: 'deliver'; i: number }
  | { t: 'scale'; n: number }
  | { t: 'template' }
  | { t: 'time'; s: number }
  | { t: 'probeFault' }
  | { t: 'probe' }
  | { t: 'directMail'; i: number; n: number }
  | { t: 'deleteCluster' }
  | { t: 'recreate'; n: number; policy: 'Retain' | 'Delete' }
  | { t: 'policy' }
  | { t: 'reconcile'; crashAfter?: number; probe?: boolean };

const MAX_INDEX = 6;

class Sim {
  readonly w = new World(mailCluster({ replicas: 3, drainTimeout: '60s' }));
  /** Messages on each claim's volume, by claim UID. */
  readonly mail = new Map<string, number>();
  /** Running node processes, by pod name. */
  readonly nodes = new Map<string, Node>();
  acked = 0;
  delivered = 0;
  private probeFault = false;
  /** The operator's background prober: the last answer per pod UID, read by reconciles however old. */
  private answers = new Map<string, QueueProbe>();
  /** The MailCluster was deleted and garbage-collected (its claims may remain). */
  gone = false;
  private generations = 0;
  private ips = 0;
  private images = 0;
  readonly log: string[] = [];
  readonly stats = { claimDeletes: 0, collected: 0, recreated: 0 };

  pods(): ObservedPod[] { return this.w.list('Pod') as ObservedPod[]; }
  pod(i: number): ObservedPod | undefined { return this.w.get('Pod', `mc-${i}`) as ObservedPod | undefined; }
  claimOf(p: ObservedPod): KObject | undefined {
    const name = p.spec?.volumes?.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim?.claimName;
    return name ? this.w.get('PersistentVolumeClaim', name) : undefined;
  }
  role(p: ObservedPod): string { return p.metadata.labels?.['mailcluster.io/role'] ?? 'serving'; }
  listening(name: string): boolean { const n = this.nodes.get(name); return n !== undefined && !n.draining; }
  held(n: Node): number { return this.mail.get(n.claimUid) ?? 0; }
  drained(n: Node): boolean { return n.draining && n.sessions === 0 && this.held(n) === 0; }

  /** Serving pods whose node listens and is ready: what Addr[0] and the hand-off can reach. */
  servingTargets(except?: string): Node[] {
    return this.pods().filter((p) => p.metadata.name !== except && !p.metadata.deletionTimestamp && this.role(p) === 'serving'
      && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && this.listening(p.metadata.name))
      .map((p) => this.nodes.get(p.metadata.name)!);
  }

  stopNode(name: string): void { this.nodes.delete(name); }

  step(e: Event): void {
    this.log.push(JSON.stringify(e));
    switch (e.t) {
      case 'mail': {
        const targets = this.servingTargets();
        if (targets.length === 0) return; // refused (4xx): not acknowledged, not ours to keep
        const n = targets[e.n % targets.length];
        this.mail.set(n.claimUid, this.held(n) + e.n);
        this.acked += e.n;
        return;
      }
      case 'ip': return this.startPod(e.i);
      case 'ready': {
        const p = this.pod(e.i);
        if (p?.status?.podIP && this.nodes.has(p.metadata.name)) p.status.conditions = [{ type: 'Ready', status: 'True' }];
        if (p?.status?.containerStatuses) p.status.containerStatuses[0].ready = true;
        return;
      }
      case 'evict': {
        const p = this.pod(e.i);
        if (p && !p.metadata.deletionTimestamp) { p.metadata.deletionTimestamp = this.w.now.toISOString(); this.stopNode(p.metadata.name); }
        return;
      }
      case 'forceDelete': {
        const p = this.pod(e.i);
        if (p) { this.stopNode(p.metadata.name); this.w.objects.delete(`Pod/${p.metadata.name}`); this.releaseClaims(); }
        return;
      }
      case 'finalize': {
        for (const p of this.pods()) if (p.metadata.deletionTimestamp) { this.stopNode(p.metadata.name); this.w.objects.delete(`Pod/${p.metadata.name}`); }
        this.releaseClaims();
        return;
      }
      case 'nodeRestart': {
        // The container restarts: the new process has forgotten it was draining; the spool stays.
        const p = this.pod(e.i);
        const n = p && this.nodes.get(p.metadata.name);
        if (n) {
          n.draining = false;
          n.sessions = 0;
          p.status!.containerStatuses = [{ ready: false, restartCount: (p.status!.containerStatuses?.[0]?.restartCount ?? 0) + 1, state: {} }];
          p.status!.conditions = [{ type: 'Ready', status: 'False' }];
        }
        return;
      }
      case 'session': {
        const n = this.nodes.get(`mc-${e.i}`);
        if (n && (!e.open || !n.draining)) n.sessions = e.open ? 1 : 0;
        return;
      }
      case 'handoff': {
        // A draining node hands its queue to a serving peer (envelope kept), if one listens.
        const n = this.nodes.get(`mc-${e.i}`);
        const to = this.servingTargets(`mc-${e.i}`)[0];
        if (n?.draining && to && to.claimUid !== n.claimUid) {
          this.mail.set(to.claimUid, this.held(to) + this.held(n));
          this.mail.set(n.claimUid, 0);
        }
        return;
      }
      case 'handoffAll': {
        for (let i = 0; i < MAX_INDEX; i++) this.step({ t: 'handoff', i });
        return;
      }
      case 'deliver': {
        // A node delivers on its retry schedule; a draining one does not (it only hands off).
        const n = this.nodes.get(`mc-${e.i}`);
        if (n && !n.draining) { this.delivered += this.held(n); this.mail.set(n.claimUid, 0); }
        return;
      }
      case 'scale': this.w.cluster = { ...this.w.cluster, spec: { ...this.w.cluster.spec, replicas: e.n } }; return;
      case 'template': this.w.cluster = { ...this.w.cluster, spec: { ...this.w.cluster.spec, image: `mailcluster/node:0.${++this.images}` } }; return;
      case 'time': this.w.now = new Date(this.w.now.getTime() + e.s * 1000); return;
      case 'probeFault': this.probeFault = true; return;
      case 'probe': this.probe(); return;
      case 'directMail': {
        // A client or a draining peer's hand-off reaching a node by its own address: any node
        // whose listener is open takes it, whatever its role label (a restarted draining node).
        const n = this.nodes.get(`mc-${e.i}`);
        if (!n || n.draining) return;
        this.mail.set(n.claimUid, this.held(n) + e.n);
        this.acked += e.n;
        return;
      }
      case 'reconcile': if (!this.gone) this.reconcile(e.crashAfter, e.probe); return;
      case 'deleteCluster': {
        if (this.gone || this.w.cluster.metadata.deletionTimestamp) return;
        this.w.cluster = { ...this.w.cluster, metadata: { ...this.w.cluster.metadata, deletionTimestamp: this.w.now.toISOString() } };
        this.collectGarbage();
        return;
      }
      case 'recreate': {
        if (!this.gone) return;
        const fresh = mailCluster({ replicas: e.n, drainTimeout: '60s', storage: { retentionPolicy: { whenDeleted: e.policy } } });
        this.w.cluster = { ...fresh, metadata: { ...fresh.metadata, uid: `uid-mc-${++this.generations}` } };
        this.gone = false;
        this.stats.recreated++;
        return;
      }
      case 'policy': {
        if (this.gone) return;
        const now = this.w.cluster.spec.storage?.retentionPolicy?.whenDeleted === 'Delete' ? 'Retain' : 'Delete';
        this.w.cluster = { ...this.w.cluster, spec: { ...this.w.cluster.spec, storage: { ...this.w.cluster.spec.storage, retentionPolicy: { whenDeleted: now } } } };
        return;
      }
    }
  }

  /** The kubelet starts a pod: only when its claim exists and is not being deleted. */
  startPod(i: number): void {
    const p = this.pod(i);
    if (!p || p.status?.podIP || p.metadata.deletionTimestamp) return;
    const claim = this.claimOf(p);
    if (!claim || claim.metadata.deletionTimestamp) return; // Pending: the volume cannot be mounted
    p.status = { phase: 'Running', podIP: `127.40.1.${++this.ips % 250}`, conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ ready: false, restartCount: 0, state: {} }] };
    this.nodes.set(p.metadata.name, { podUid: p.metadata.uid!, claimUid: claim.metadata.uid!, draining: false, sessions: 0 });
  }

  /**
   * kube-controller-manager's garbage collector: a MailCluster being deleted goes once it has
   * no finalizer, and everything with an owner reference to it goes with it (claims have none).
   */
  collectGarbage(): void {
    const c = this.w.cluster;
    if (this.gone || !c.metadata.deletionTimestamp || (c.metadata.finalizers ?? []).length > 0) return;
    this.gone = true;
    this.stats.collected++;
    for (const [key, o] of [...this.w.objects]) {
      if (!(o.metadata.ownerReferences ?? []).some((r) => r.uid === c.metadata.uid)) continue;
      if (o.kind === 'Pod') this.stopNode(o.metadata.name);
      this.w.objects.delete(key);
    }
    this.releaseClaims();
  }

  /** A claim being deleted goes once no pod mounts it (pvc-protection). */
  releaseClaims(): void {
    for (const c of this.w.list('PersistentVolumeClaim')) {
      if (!c.metadata.deletionTimestamp) continue;
      if (this.pods().some((p) => this.claimOf(p) === c)) continue;
      this.w.objects.delete(`PersistentVolumeClaim/${c.metadata.name}`);
    }
  }

  /** The background prober finishes a round: every draining pod with an address answers now. */
  probe(): void {
    for (const p of this.pods()) {
      if (this.role(p) !== 'draining' || !p.status?.podIP) continue;
      const n = this.nodes.get(p.metadata.name);
      const uid = p.metadata.uid!;
      if (!n || this.probeFault) { this.answers.set(uid, { error: 'connect ECONNREFUSED', uid }); continue; }
      this.answers.set(uid, {
        total: this.held(n), draining: n.draining, drained: this.drained(n), uid: n.podUid,
        askedAt: this.w.now.getTime(), restarts: restartsOf(p),
      });
    }
    this.probeFault = false;
  }

  /** What a reconcile reads: the last answer of each draining pod (queue-prober.ts), maybe stale. */
  cachedAnswers(): Record<string, QueueProbe> {
    const out: Record<string, QueueProbe> = {};
    for (const p of this.pods()) {
      if (this.role(p) !== 'draining' || !p.status?.podIP) continue;
      const a = this.answers.get(p.metadata.uid!);
      if (a) out[p.metadata.name] = a;
    }
    return out;
  }

  /** One operator pass: read the answers, plan, carry out the plan in the reconciler's order (maybe only a prefix). */
  reconcile(crashAfter?: number, probeFirst = false): void {
    if (probeFirst) this.probe();
    this.w.queues = this.cachedAnswers();
    const observed = this.w.observed();
    const p = plan(observed);
    const actions: Array<() => void> = [];
    const setFinalizers = (): void => {
      this.w.cluster = { ...this.w.cluster, metadata: { ...this.w.cluster.metadata, finalizers: p.finalizers } };
      this.collectGarbage();
    };
    const adding = p.finalizers !== undefined && p.finalizers.length > (this.w.cluster.metadata.finalizers ?? []).length;
    if (adding) actions.push(setFinalizers);
    const applies = [...p.apply.filter((o) => o.kind !== 'Pod'), ...p.apply.filter((o) => o.kind === 'Pod')];
    for (const o of applies) actions.push(() => this.w.apply(only({ apply: [o] })));
    for (const x of p.patchPods) actions.push(() => this.w.apply(only({ patchPods: [x] })));
    for (const d of p.drain) actions.push(() => this.drain(d.pod, d.url));
    for (const d of p.delete) actions.push(() => this.delete(d.kind, d.name, observed.queues));
    if (p.finalizers && !adding) actions.push(setFinalizers);
    if (p.status) actions.push(() => { if (!this.gone) this.w.apply(only({ status: p.status })); });
    const n = crashAfter === undefined ? actions.length : Math.min(crashAfter, actions.length);
    for (const a of actions.slice(0, n)) a();
  }

  drain(pod: string, url: string): void {
    const p = this.w.get('Pod', pod) as ObservedPod | undefined;
    const n = this.nodes.get(pod);
    if (!p || !n || !url.includes(`//${p.status?.podIP}:`)) return; // request failed: not annotated
    n.draining = true;
    p.metadata.annotations = { ...p.metadata.annotations, 'mailcluster.io/drain-requested': this.w.now.toISOString() };
  }

  delete(kind: string, name: string, queues: Record<string, QueueProbe>): void {
    const o = this.w.get(kind, name);
    if (!o) return;
    if (kind === 'PersistentVolumeClaim') {
      const held = this.mail.get(o.metadata.uid!) ?? 0;
      assert.equal(held, 0, `claim ${name} deleted holding ${held} messages\n${this.log.join('\n')}`);
      // The model's own check: a pod on this very volume whose probe (of that pod, by the
      // process still running, recently enough) said drained.
      const vouching = this.pods().filter((p) => {
        const q = queues[p.metadata.name];
        return this.claimOf(p) === o && q !== undefined && 'total' in q && q.drained === true && q.uid === p.metadata.uid
          && q.restarts === restartsOf(p) && q.askedAt !== undefined && this.w.now.getTime() - q.askedAt <= DRAIN_ANSWER_MAX_AGE_MS;
      });
      assert.ok(vouching.length > 0, `claim ${name} deleted without a node on it having reported itself drained\n${this.log.join('\n')}`);
      o.metadata.deletionTimestamp = this.w.now.toISOString();
      this.stats.claimDeletes++;
      this.releaseClaims();
      return;
    }
    if (kind === 'Pod') {
      o.metadata.deletionTimestamp = this.w.now.toISOString();
      this.stopNode(name);
      return;
    }
    this.w.objects.delete(`${kind}/${name}`);
  }

  /** Every acknowledged message is delivered or on a claim that still exists. */
  checkLedger(): void {
    const live = new Set(this.w.list('PersistentVolumeClaim').map((c) => c.metadata.uid));
    let onClaims = 0;
    for (const [uid, n] of this.mail) {
      if (live.has(uid)) onClaims += n;
      else assert.equal(n, 0, `a deleted volume held ${n} messages\n${this.log.join('\n')}`);
    }
    assert.equal(this.delivered + onClaims, this.acked, `ledger: ${this.acked} acknowledged, ${this.delivered} delivered, ${onClaims} queued\n${this.log.join('\n')}`);
  }

  /** Faults stop: pods start, nodes deliver, terminating pods finish, the operator runs. */
  settle(rounds: number): number {
    for (let r = 0; r < rounds; r++) {
      this.step({ t: 'recreate', n: 3, policy: 'Retain' }); // a user who deleted it wants it back
      this.step({ t: 'finalize' });
      for (let i = 0; i < MAX_INDEX; i++) { this.step({ t: 'ip', i }); this.step({ t: 'ready', i }); this.step({ t: 'session', i, open: false }); this.step({ t: 'deliver', i }); }
      this.step({ t: 'handoffAll' });
      this.step({ t: 'reconcile', probe: true });
      this.step({ t: 'time', s: 1 });
      this.checkLedger();
      if (this.converged()) return r;
    }
    assert.fail(`no convergence after ${rounds} rounds: pods ${this.pods().map((p) => `${p.metadata.name}/${this.role(p)}${p.metadata.deletionTimestamp ? '/terminating' : ''}`).join(' ')}; claims ${this.w.list('PersistentVolumeClaim').map((c) => c.metadata.name).join(' ')}\n${this.log.slice(-60).join('\n')}`);
  }

  converged(): boolean {
    if (this.gone || this.w.cluster.metadata.deletionTimestamp) return false;
    const desired = this.w.cluster.spec.replicas ?? 3;
    const want = Array.from({ length: desired }, (_, i) => i);
    const pods = this.pods();
    const image = this.w.cluster.spec.image;
    return pods.length === desired
      && want.every((i) => {
        const p = this.pod(i);
        return p && !p.metadata.deletionTimestamp && this.role(p) === 'serving' && p.status?.podIP
          && (image === undefined || (p as any).spec.containers[0].image === image);
      })
      && same(this.w.list('PersistentVolumeClaim').map((c) => c.metadata.name), want.map((i) => `mc-${i}-spool`));
  }
}

const only = (p: Partial<Plan>): Plan => ({ apply: [], secrets: [], createOnce: [], unwatched: [], patchPods: [], drain: [], delete: [], events: [], ...p });
const same = (a: string[], b: string[]): boolean => a.length === b.length && [...a].sort().every((x, k) => x === [...b].sort()[k]);

const index = fc.integer({ min: 0, max: MAX_INDEX - 1 });
const event: fc.Arbitrary<Event> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('reconcile' as const), crashAfter: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }), probe: fc.boolean() }) },
  { weight: 3, arbitrary: fc.constant({ t: 'probe' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('directMail' as const), i: index, n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('mail' as const), n: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('ip' as const), i: index }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('ready' as const), i: index }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('evict' as const), i: index }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('forceDelete' as const), i: index }) },
  { weight: 1, arbitrary: fc.constant({ t: 'finalize' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('nodeRestart' as const), i: index }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('session' as const), i: index, open: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('handoff' as const), i: index }) },
  { weight: 3, arbitrary: fc.constant({ t: 'handoffAll' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('deliver' as const), i: index }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('scale' as const), n: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'template' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('time' as const), s: fc.constantFrom(1, 5, 31, 61) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'probeFault' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'deleteCluster' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('recreate' as const), n: fc.integer({ min: 1, max: 5 }), policy: fc.constantFrom('Retain' as const, 'Delete' as const) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'policy' as const }) },
);

/** A converged 3-node cluster to start from. */
function start(): Sim {
  const s = new Sim();
  s.settle(20);
  s.log.length = 0; // the log shows the scenario only
  return s;
}

/** Over all runs: how much the scenarios exercised (printed, so a weak generator shows). */
const totals = { runs: 0, claimsDeletedInFaults: 0, maxAcked: 0, collected: 0, recreated: 0 };

function runScenario(events: Event[]): void {
  const s = start();
  for (const e of events) {
    s.step(e);
    s.checkLedger();
  }
  totals.runs++;
  totals.claimsDeletedInFaults += s.stats.claimDeletes;
  totals.maxAcked = Math.max(totals.maxAcked, s.acked);
  totals.collected += s.stats.collected;
  totals.recreated += s.stats.recreated;
  s.settle(400);
}

describe('operator planner, model-based (fast-check)', function () {
  this.timeout(120_000);

  it('never deletes a claim holding mail or not proven drained; converges once faults stop', () => {
    fc.assert(fc.property(fc.array(event, { minLength: 1, maxLength: 60, size: 'max' }), (events) => { runScenario(events); }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 500), ...(process.env.MODEL_SEED ? { seed: Number(process.env.MODEL_SEED) } : {}) });
    console.log(`      ${totals.runs} scenarios: ${totals.claimsDeletedInFaults} claims deleted during faults (each checked), ${totals.collected} MailClusters garbage-collected, ${totals.recreated} created again, up to ${totals.maxAcked} messages acknowledged in one`);
  });

  it('bug 1 as a sequence: a recovered draining pod without an address keeps its mail', () => {
    runScenario([
      { t: 'mail', n: 3 }, { t: 'mail', n: 4 }, { t: 'mail', n: 5 },
      { t: 'scale', n: 2 }, { t: 'reconcile', probe: true }, // mc-2 draining (holds mail)
      { t: 'forceDelete', i: 2 }, { t: 'reconcile', probe: true }, // brought back as draining, Pending
      { t: 'reconcile', probe: true }, { t: 'reconcile', probe: true },
    ]);
  });

  it('deleted with Retain and created again smaller: the retained claims are adopted, the surplus drained', () => {
    runScenario([
      { t: 'mail', n: 3 }, { t: 'mail', n: 4 }, { t: 'mail', n: 5 },
      { t: 'deleteCluster' }, { t: 'reconcile', probe: true },
      { t: 'recreate', n: 1, policy: 'Retain' }, { t: 'reconcile', probe: true }, { t: 'reconcile', probe: true },
    ]);
  });

  it('deleted with Delete while the last node holds mail: nothing goes until it is delivered', () => {
    runScenario([
      { t: 'policy' }, { t: 'reconcile', probe: true },
      { t: 'mail', n: 3 }, { t: 'mail', n: 4 }, { t: 'mail', n: 5 },
      { t: 'deleteCluster' }, { t: 'reconcile', probe: true }, { t: 'handoffAll' }, { t: 'reconcile', probe: true }, { t: 'reconcile', probe: true },
      { t: 'handoffAll' }, { t: 'reconcile', probe: true }, { t: 'reconcile', probe: true }, { t: 'reconcile', probe: true },
    ]);
  });

  it('a cached drained answer from before a restart does not let the claim go (the new process took mail)', () => {
    runScenario([
      { t: 'scale', n: 2 }, { t: 'reconcile', probe: true }, // mc-2 draining, asked to drain
      { t: 'probe' }, // it answers drained (empty, no session)
      { t: 'nodeRestart', i: 2 }, { t: 'directMail', i: 2, n: 3 }, // a new process, listening, takes 3 messages
      { t: 'reconcile' }, { t: 'reconcile' }, // the cached answer still says drained
    ]);
  });

  it('a cached drained answer too old to vouch does not let the claim go', () => {
    const s = start();
    for (const e of [{ t: 'scale', n: 2 }, { t: 'reconcile', probe: true }, { t: 'probe' }, { t: 'time', s: 6 }, { t: 'reconcile' }] as Event[]) s.step(e);
    assert.ok(s.w.get('PersistentVolumeClaim', 'mc-2-spool') && !s.w.get('PersistentVolumeClaim', 'mc-2-spool')!.metadata.deletionTimestamp, 'kept');
    s.step({ t: 'reconcile', probe: true });
    assert.ok(s.w.get('PersistentVolumeClaim', 'mc-2-spool')?.metadata.deletionTimestamp, 'a fresh answer lets it go');
  });

  // Found by this model (seed 2064087455, and failing the same way before the probes became
  // asynchronous): deleted with whenDeleted: Delete, nodes brought back for their claims drain
  // empty and go first; the last one, asked to drain while they served, holds mail with no peer
  // left to hand it to, and a draining node does not deliver.
  it('the last draining node of a deleted cluster, left without a peer, is restarted to deliver its mail itself', () => {
    runScenario([
      { t: 'forceDelete', i: 0 }, { t: 'mail', n: 1 }, { t: 'policy' }, { t: 'reconcile', crashAfter: 1, probe: true },
      { t: 'deleteCluster' }, { t: 'reconcile', probe: true }, { t: 'forceDelete', i: 1 }, { t: 'reconcile', probe: true },
    ]);
    runScenario([
      { t: 'policy' }, { t: 'scale', n: 1 }, { t: 'mail', n: 5 }, { t: 'reconcile' }, { t: 'evict', i: 1 }, { t: 'forceDelete', i: 0 },
      { t: 'deleteCluster' }, { t: 'reconcile' },
    ]);
  });

  it('bug 2 as a sequence: an excess serving pod without an address keeps its mail', () => {
    runScenario([
      { t: 'mail', n: 3 }, { t: 'mail', n: 4 }, { t: 'mail', n: 5 },
      { t: 'forceDelete', i: 2 }, { t: 'reconcile', probe: true }, // mc-2 recreated serving, Pending
      { t: 'scale', n: 2 }, { t: 'reconcile', probe: true }, { t: 'reconcile', probe: true },
    ]);
  });
});
