// One reconcile of one MailCluster: read the informers' view (plus the few things only a
// request can tell: the TLS Secret where allowed, draining nodes' queues), plan, then carry out
// the plan — everything pods mount or name first, at once (Secrets written whole and never read,
// server-side apply for every other write of desired state), then the pods, then the status
// through the status subresource. What the operator wrote and its cache does not show yet is
// not written again (own-writes.ts).
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type CustomObjectsApi, type KubernetesObjectApi } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, KIND, PLURAL, VERSION, type MailCluster } from '../api/v1alpha1/types.ts';
import { ANNOTATION_DRAIN_REQUESTED, LABEL_CLUSTER, LABEL_ROLE } from '../resources/labels.ts';
import { clusterCredentials, type ClusterCredentials } from '../resources/credentials.ts';
import { shortHash } from '../resources/hash.ts';
import { adminSecretName, ADMIN_PORT, mailqSecretName, peerTlsSecretName } from '../resources/names.ts';
import type { AdminAccess } from '../resources/network-policy.ts';
import { buildPeerTlsSecret, issuePeerTls, type PeerTlsMaterial } from '../resources/peer-tls.ts';
import type { EventRecorder } from './events.ts';
import type { InformerSet } from './informers.ts';
import type { OperatorMetrics } from './metrics.ts';
import { fromClientModel, toClientModel } from './client-model.ts';
import { requestDrain } from './node-admin.ts';
import { restartsOf } from './claims.ts';
import type { QueueProber } from './queue-prober.ts';
import type { RolloutSlots } from './rollout-slots.ts';
import type { KObject, ObservedPod, ObservedState, QueueProbe, TlsSecretState } from './observed.ts';
import { objectKey, statusKey, type OwnWrites } from './own-writes.ts';
import { plan, type Plan } from './plan.ts';
import type { SecretWriter } from './secret-writer.ts';

export const FIELD_MANAGER = 'mailcluster-operator';

export interface ReconcilerDeps {
  informers: InformerSet;
  objects: KubernetesObjectApi;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  events: EventRecorder;
  metrics: OperatorMetrics;
  log: Logger;
  /** The operator's master key (master-key.ts), loaded when the manager starts. */
  masterKey: () => Buffer;
  adminAccess: AdminAccess;
  secrets: SecretWriter;
  /** The cluster-wide pace of pod-template rollouts. */
  slots: RolloutSlots;
  /** GET /queue of draining nodes, in the background (a reconcile never waits for a node). */
  prober: QueueProber;
  /** Throws when this replica may no longer write (leader election's fence); checked before every write. */
  fence?: () => void;
  /** The operator's writes its informers have not shown yet (not written again meanwhile). */
  ownWrites?: OwnWrites;
}

/** A write refused because this replica is no longer (surely) the leader. */
export class NotLeaderError extends Error {
  constructor() { super('not the leader (renew deadline passed): write refused'); }
}

const codeOf = (err: unknown): number | undefined => (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;

/** A short, readable message for an API error (the Status message when there is one). */
export function describeError(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  let parsed: unknown = body;
  if (typeof body === 'string') { try { parsed = JSON.parse(body); } catch { /* plain text */ } }
  const message = (parsed as { message?: string } | undefined)?.message;
  return (message ?? (err as Error).message ?? String(err)).slice(0, 500);
}

/**
 * A create refused because the namespace is being deleted (403, cause NamespaceTerminating):
 * nothing new can be made there, and the namespace's deletion takes the MailCluster with it.
 * Not a failure to report or retry: an event or a status write would be refused the same way.
 */
export function isNamespaceTerminating(err: unknown): boolean {
  if (codeOf(err) !== 403) return false;
  const body = (err as { body?: unknown }).body;
  let parsed: unknown = body;
  if (typeof body === 'string') { try { parsed = JSON.parse(body); } catch { return false; } }
  const causes = (parsed as { details?: { causes?: Array<{ reason?: string }> } } | undefined)?.details?.causes ?? [];
  return causes.some((c) => c.reason === 'NamespaceTerminating');
}

function ownedBy(uid: string | undefined) {
  return (o: KObject): boolean => Boolean(uid) && (o.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
}

/**
 * Spool claims of cluster `name`: found by label, not by owner — they carry no owner reference
 * (so a MailCluster created again with the same name adopts them). One that still has a
 * MailCluster owner (an earlier operator version) is ours too; the planner disowns it.
 */
export function spoolClaimsOf(name: string) {
  return (o: KObject): boolean => o.metadata.labels?.[LABEL_CLUSTER] === name
    && (o.metadata.ownerReferences ?? []).every((r) => !r.controller || r.kind === KIND);
}

export class Reconciler {
  private readonly d: ReconcilerDeps;
  /** Namespaces where reading the user's TLS Secret was refused (403): not asked again. */
  private readonly tlsReadForbidden = new Set<string>();
  private readonly peerTls = new Map<string, Promise<PeerTlsMaterial>>();

  constructor(deps: ReconcilerDeps) { this.d = deps; }

  /**
   * Whether each cluster is rolling (or waiting to), read from the informers alone — no probe,
   * no request — for the rollout slots at start (rollout-slots.ts). Yields now and then.
   */
  async seedRollouts(keys: string[]): Promise<void> {
    for (let n = 0; n < keys.length; n++) {
      const key = keys[n];
      const [namespace, name] = key.split('/');
      const cluster = this.d.informers.get('MailCluster', namespace, name) as unknown as MailCluster | undefined;
      if (!cluster) continue;
      const observed = this.observe(key, cluster, undefined, false);
      observed.rolloutAllowed = false; // only what is rolling already counts
      this.d.slots.record(key, plan(observed).rollout);
      if (n % 50 === 49) await new Promise((r) => setImmediate(r));
    }
  }

  /** What the informers (and, with `probe`, the background prober) show of one cluster. */
  private observe(key: string, cluster: MailCluster, lastError: string | undefined, probe: boolean): ObservedState {
    const [namespace, name] = key.split('/');
    const credentials = clusterCredentials(this.d.masterKey(), { namespace, name, uid: cluster.metadata.uid ?? '' });
    const owned = ownedBy(cluster.metadata.uid);
    // From the index by cluster (only this cluster's objects), then checked by owner UID.
    const children = (kind: string) => this.d.informers.children(kind, namespace, name).filter(owned);
    const pods = children('Pod') as ObservedPod[];
    return {
      cluster,
      pods,
      configMaps: children('ConfigMap'),
      claims: this.d.informers.children('PersistentVolumeClaim', namespace, name).filter(spoolClaimsOf(name)),
      services: children('Service'),
      podDisruptionBudgets: children('PodDisruptionBudget'),
      networkPolicies: children('NetworkPolicy').map(fromClientModel),
      nodeAccess: { ServiceAccount: children('ServiceAccount'), Role: children('Role'), RoleBinding: children('RoleBinding') },
      queues: probe ? this.drainingQueues(key, pods, credentials.adminToken) : {},
      ...(lastError ? { lastError } : {}),
      credentials,
      adminAccess: this.d.adminAccess,
      now: new Date(),
    };
  }

  async reconcile(key: string, lastError?: string): Promise<Plan | undefined> {
    const started = Date.now();
    const [namespace, name] = key.split('/');
    const cluster = this.d.informers.get('MailCluster', namespace, name) as unknown as MailCluster | undefined;
    if (!cluster) { // deleted: garbage collection removes the children
      this.d.prober.forget(key);
      this.d.slots.forget(key);
      this.d.secrets.forget(namespace, [mailqSecretName(name), adminSecretName(name), peerTlsSecretName(name)]);
      for (const k of this.peerTls.keys()) if (k.startsWith(`${namespace}/${name}/`)) this.peerTls.delete(k);
      this.d.ownWrites?.forget((k) => k === statusKey(namespace, name));
      return undefined;
    }
    const observed = this.observe(key, cluster, lastError, true);
    const { credentials } = observed;
    if (cluster.spec?.tls?.secretName) {
      const state = await this.tlsSecretState(namespace, cluster.spec.tls.secretName);
      if (state) observed.tlsSecret = state;
    }
    // No await between asking for a rollout slot and recording what the plan did with it.
    observed.rolloutAllowed = this.d.slots.allowed(key);
    const p = plan(observed);
    this.d.slots.record(key, p.rollout);
    const planned = Date.now();
    const deferred = this.deferUnseenWrites(namespace, name, p);
    // Nothing of the cluster observed yet: its first pass, so its Secrets were never made either.
    const fresh = observed.pods.length === 0 && observed.configMaps.length === 0 && observed.services.length === 0;
    const secretsWritten = await this.execute(cluster, p, credentials, fresh);
    if (p.apply.length + p.patchPods.length + p.drain.length + p.delete.length + secretsWritten.length > 0 || p.status || p.finalizers || deferred) {
      this.d.log.info({
        cluster: key,
        applied: p.apply.map((o) => `${o.kind}/${o.metadata.name}`),
        secrets: secretsWritten,
        patched: p.patchPods.map((x) => x.name),
        drained: p.drain.map((x) => x.pod),
        deleted: p.delete.map((x) => `${x.kind}/${x.name}`),
        status: p.status !== undefined,
        ...(deferred ? { deferred } : {}),
        ...(p.finalizers ? { finalizers: p.finalizers } : {}),
        observeMs: planned - started,
        executeMs: Date.now() - planned,
      }, 'reconciled');
    }
    return p;
  }

  /**
   * Takes out of the plan what the operator wrote itself and its cache does not show yet
   * (own-writes.ts): applies of the very content written, and the status while the last status
   * write is unseen. The cache's catching up queues the cluster again; the requeue only covers
   * an event that never comes. Returns what was held back, for the log.
   */
  private deferUnseenWrites(namespace: string, name: string, p: Plan): string[] | undefined {
    const own = this.d.ownWrites;
    if (!own) return undefined;
    const now = Date.now();
    const deferred: string[] = [];
    const keep: typeof p.apply = [];
    let retryMs: number | undefined;
    const hold = (what: string, ms: number): void => {
      deferred.push(what);
      this.d.metrics.deferredWrites.inc({ kind: what === 'status' ? 'MailCluster/status' : what.split('/')[0] });
      retryMs = Math.min(retryMs ?? ms, ms);
    };
    for (const o of p.apply) {
      const unseen = own.unseen(objectKey(o.kind!, namespace, o.metadata.name), now, this.hashOf(o));
      if (unseen) hold(`${o.kind}/${o.metadata.name}`, own.remainingMs(unseen, now));
      else keep.push(o);
    }
    p.apply = keep;
    if (p.status) {
      const unseen = own.unseen(statusKey(namespace, name), now);
      if (unseen) { delete p.status; hold('status', own.remainingMs(unseen, now)); }
    }
    if (retryMs !== undefined) p.requeueAfterMs = Math.min(p.requeueAfterMs ?? retryMs, retryMs);
    return deferred.length > 0 ? deferred : undefined;
  }

  private readonly hashes = new WeakMap<object, string>();
  private hashOf(o: KObject): string {
    let h = this.hashes.get(o);
    if (h === undefined) { h = shortHash(o); this.hashes.set(o, h); }
    return h;
  }

  /** Remembers a write the API server answered with `written` (its resourceVersion). */
  private rememberWrite(key: string, hash: string, written: unknown, cached: KObject | undefined): void {
    const rv = (written as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
    this.d.ownWrites?.wrote(key, hash, rv, Date.now(), cached?.metadata.resourceVersion);
  }

  /** A Warning event on the cluster for a failed reconcile (best effort). */
  async recordError(key: string, message: string): Promise<void> {
    const [namespace, name] = key.split('/');
    const cluster = this.d.informers.get('MailCluster', namespace, name) as unknown as MailCluster | undefined;
    try { this.d.fence?.(); } catch { return; } // no longer the leader: nothing to record
    if (cluster) await this.d.events.record(cluster, { type: 'Warning', reason: 'ReconcileError', message });
  }

  /**
   * The last answers of every draining pod that has an address, from the background prober
   * (which asks again those that are old, and queues this cluster when an answer arrives).
   * Each answer carries the UID of the pod asked, so the planner never credits it to another
   * pod of that name, and when it was asked, so the planner can judge whether it still holds.
   */
  private drainingQueues(key: string, pods: ObservedPod[], token: string): Record<string, QueueProbe> {
    const targets = pods
      .filter((p) => p.metadata.labels?.[LABEL_ROLE] === 'draining' && p.status?.podIP && p.metadata.uid)
      .map((p) => {
        const ip = p.status!.podIP!;
        return { pod: p.metadata.name, uid: p.metadata.uid!, baseUrl: `http://${ip.includes(':') ? `[${ip}]` : ip}:${ADMIN_PORT}`, restarts: restartsOf(p) };
      });
    return this.d.prober.answers(key, token, targets);
  }

  /**
   * The user's TLS Secret, where the operator may read Secrets in that namespace (watched
   * namespaces get a namespaced Role with `get`); cluster-wide it has no such right, and a
   * missing Secret shows as pods that cannot mount it (FailedMount). Undefined: not known.
   */
  private async tlsSecretState(namespace: string, name: string): Promise<TlsSecretState | undefined> {
    if (this.tlsReadForbidden.has(namespace)) return undefined;
    try {
      const secret = await this.d.core.readNamespacedSecret({ name, namespace });
      return secret.data?.['tls.crt'] && secret.data?.['tls.key'] ? 'ok' : 'invalid';
    } catch (err) {
      if (codeOf(err) === 404) return 'missing';
      if (codeOf(err) === 403) {
        this.tlsReadForbidden.add(namespace);
        this.d.log.info({ namespace }, 'no right to read Secrets here: the TLS Secret is checked by the pods mounting it');
        return undefined;
      }
      throw err;
    }
  }

  /** A merge patch of metadata.finalizers, tied to the resourceVersion seen (409 if it moved). */
  private async patchFinalizers(cluster: MailCluster, finalizers: string[]): Promise<void> {
    this.write('patch', 'MailCluster');
    await this.d.custom.patchNamespacedCustomObject({
      group: GROUP, version: VERSION, plural: PLURAL, namespace: cluster.metadata.namespace, name: cluster.metadata.name,
      body: { metadata: { finalizers, ...(cluster.metadata.resourceVersion ? { resourceVersion: cluster.metadata.resourceVersion } : {}) } },
    }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }

  /** Every write to the API server or a node goes through here first: fenced, then counted. */
  private write(verb: string, kind: string): void {
    this.d.fence?.();
    this.d.metrics.writes.inc({ verb, kind });
  }

  /**
   * Fresh peer TLS material for a cluster, made once per process and cluster uid: the create is
   * tried again every resync period (409 when it exists), and should not cost two RSA keys each time.
   */
  private peerTlsFor(cluster: MailCluster, dnsName: string): Promise<PeerTlsMaterial> {
    const key = `${cluster.metadata.namespace}/${cluster.metadata.name}/${cluster.metadata.uid}`;
    let made = this.peerTls.get(key);
    if (!made) {
      made = issuePeerTls(cluster.metadata.name, dnsName);
      made.catch(() => this.peerTls.delete(key));
      this.peerTls.set(key, made);
    }
    return made;
  }

  /**
   * The cluster's Secrets and unwatched objects (a cert-manager Certificate), as writes that may
   * run together. Each resolves to what it wrote, if anything.
   */
  private secretWrites(cluster: MailCluster, p: Plan, fresh: boolean): Array<Promise<string | undefined>> {
    const ns = cluster.metadata.namespace;
    const writes: Array<Promise<string | undefined>> = [];
    for (const once of p.createOnce) {
      writes.push(this.d.secrets.createOnce(ns, once.name, async () => buildPeerTlsSecret(cluster, await this.peerTlsFor(cluster, once.dnsName)))
        .then((r) => (r === 'created' ? once.name : undefined)));
    }
    for (const s of p.secrets) writes.push(this.d.secrets.write(s, fresh).then((w) => (w ? s.metadata.name : undefined)));
    const applyUnwatched = (o: KObject): Promise<string | undefined> => this.d.secrets.applyIfChanged(o, async () => {
      this.write('apply', o.kind!);
      await this.d.objects.patch(toClientModel(o) as never, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    }).then((applied) => (applied ? `${o.kind}/${o.metadata.name}` : undefined));
    writes.push(...p.unwatched.map(applyUnwatched));
    return writes;
  }

  /** Pods (<namespace>/<pod>) whose POST /drain is in flight: never two at once for one pod. */
  private readonly drainsInFlight = new Set<string>();

  private requestDrainInBackground(cluster: MailCluster, d: { pod: string; url: string }, token: string): void {
    const ns = cluster.metadata.namespace;
    const key = `${ns}/${d.pod}`;
    if (this.drainsInFlight.has(key)) return;
    this.d.fence?.();
    this.drainsInFlight.add(key);
    const { log, objects } = this.d;
    // The annotation goes on this very pod: a later reconcile may replace a pod of the same name
    // meanwhile, and the UID in the patch makes the API server refuse it on any other pod.
    const uid = this.d.informers.get('Pod', ns, d.pod)?.metadata.uid;
    void (async () => {
      try {
        await requestDrain(d.url, token);
        log.info({ cluster: `${ns}/${cluster.metadata.name}`, pod: d.pod }, 'drain requested');
        this.write('patch', 'Pod');
        await objects.patch({ apiVersion: 'v1', kind: 'Pod', metadata: { name: d.pod, namespace: ns, ...(uid ? { uid } : {}), annotations: { [ANNOTATION_DRAIN_REQUESTED]: new Date().toISOString() } } } as never,
          undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
      } catch (err) {
        if (err instanceof NotLeaderError) return;
        // Asked again on a later pass (the plan keeps asking until the annotation is there).
        log.warn({ pod: d.pod, err: describeError(err) }, 'drain request failed');
        try { this.d.fence?.(); } catch { return; }
        await this.d.events.record(cluster, { type: 'Warning', reason: 'DrainRequestFailed', message: `POST /drain to ${d.pod}: ${describeError(err)}` });
      } finally {
        this.drainsInFlight.delete(key);
      }
    })();
  }

  /** Carries out the plan; returns the Secrets (and unwatched objects) written. */
  private async execute(cluster: MailCluster, p: Plan, credentials: ClusterCredentials, fresh: boolean): Promise<string[]> {
    const { objects } = this.d;
    const ns = cluster.metadata.namespace;
    // A finalizer is added before anything is created (a MailCluster deleted right away is
    // held too) and removed only after every delete of this pass went through.
    const adding = p.finalizers !== undefined && p.finalizers.length > (cluster.metadata.finalizers ?? []).length;
    if (p.finalizers && adding) await this.patchFinalizers(cluster, p.finalizers);
    const apply = async (obj: KObject): Promise<void> => {
      const hash = this.hashOf(obj);
      this.write('apply', obj.kind!);
      const answer = await objects.patch(toClientModel(obj) as never, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      this.rememberWrite(objectKey(obj.kind!, ns, obj.metadata.name), hash, answer, this.d.informers.get(obj.kind!, ns, obj.metadata.name));
    };
    // Everything a pod mounts or names first, all at once (no order among them: Secrets,
    // accounts and Roles, ConfigMaps, claims, Services...), then the pods, also at once, with the
    // RoleBindings: a new cluster's first pass is two round trips, not one per object. A
    // RoleBinding goes after its Role: without the right to bind, the API server checks that the
    // operator holds every rule of the Role it binds, and a Role not written yet is a 404. It
    // need not be there before the pod: only the node's API watch uses it, a second after its
    // container starts, and that retries a 403 (half a second later).
    const secondWave = (o: KObject): boolean => o.kind === 'Pod' || o.kind === 'RoleBinding';
    const writes = this.secretWrites(cluster, p, fresh);
    const settled = Promise.allSettled(writes);
    const [secretsWritten] = await Promise.all([
      Promise.all(writes),
      Promise.all(p.apply.filter((o) => !secondWave(o)).map(apply)),
    ]).catch(async (err: unknown) => { await settled; throw err; });
    await Promise.all(p.apply.filter(secondWave).map(apply));
    for (const patch of p.patchPods) {
      this.write('patch', 'Pod');
      await objects.patch({ apiVersion: 'v1', kind: 'Pod', metadata: { name: patch.name, namespace: ns, labels: patch.labels, annotations: patch.annotations } } as never,
        undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
    }
    // POST /drain goes out in the background: a node that is slow to answer (up to the
    // request's 5 s timeout) holds no worker. Its answer is recorded on the pod as the
    // drain-requested annotation, whose watch event queues the cluster again.
    for (const d of p.drain) this.requestDrainInBackground(cluster, d, credentials.adminToken);
    for (const d of p.delete) {
      try {
        this.write('delete', d.kind);
        await objects.delete({ apiVersion: d.apiVersion, kind: d.kind, metadata: { name: d.name, namespace: ns } }, undefined, undefined, undefined, undefined, 'Background');
      } catch (err) {
        if (codeOf(err) !== 404) throw err;
      }
    }
    if (p.finalizers && !adding) await this.patchFinalizers(cluster, p.finalizers);
    if (p.status && !(p.finalizers && !adding && cluster.metadata.deletionTimestamp)) {
      this.write('apply', 'MailCluster/status');
      const updated = await this.d.custom.patchNamespacedCustomObjectStatus({
        group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name: cluster.metadata.name,
        body: { apiVersion: cluster.apiVersion, kind: cluster.kind, metadata: { name: cluster.metadata.name, namespace: ns }, status: p.status },
        fieldManager: FIELD_MANAGER, force: true,
      }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
      this.rememberWrite(statusKey(ns, cluster.metadata.name), '', updated, this.d.informers.get(KIND, ns, cluster.metadata.name));
    }
    this.d.fence?.();
    await Promise.all(p.events.map((e) => this.d.events.record(cluster, e)));
    return secretsWritten.filter((w): w is string => w !== undefined);
  }
}
