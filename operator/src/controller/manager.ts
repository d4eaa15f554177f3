// Wires the operator together: informers (on every replica, so a new leader starts warm),
// the work queue and its workers (on the leader only), leader election, metrics and health.
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KIND } from '../api/v1alpha1/types.ts';
import { LABEL_CLUSTER } from '../resources/labels.ts';
import type { AdminAccess } from '../resources/network-policy.ts';
import { reuseApiConnections } from './api-connections.ts';
import { countApiRequests } from './api-requests.ts';
import { EventRecorder } from './events.ts';
import { InformerSet } from './informers.ts';
import { LeaderElector } from './leader.ts';
import { QueueProber } from './queue-prober.ts';
import { RolloutSlots } from './rollout-slots.ts';
import { loadMasterKey, type MasterKeySource } from './master-key.ts';
import { createMetrics, type OperatorMetrics } from './metrics.ts';
import type { KObject } from './observed.ts';
import { objectKey, OwnWrites, statusKey } from './own-writes.ts';
import { describeError, FIELD_MANAGER, isNamespaceTerminating, NotLeaderError, Reconciler } from './reconciler.ts';
import { SECRET_RESYNC_MS, SecretWriter } from './secret-writer.ts';
import { WorkQueue } from './workqueue.ts';

export interface ManagerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Watched namespaces; empty or undefined for all. */
  namespaces?: string[];
  leaderElection?: { namespace: string; name?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  /** host:port for /metrics, /healthz and /readyz; undefined for none. */
  metricsAddress?: string;
  workers?: number;
  /** Clusters rolling a pod-template change at once (default 3). */
  maxConcurrentRollouts?: number;
  /** GET /queue probes of draining nodes in flight at once, across all clusters (default 16). */
  probeConcurrency?: number;
  /** The master key, or where to find it (loaded at start, before anything is reconciled). */
  masterKey: MasterKeySource | Buffer;
  /** How often each written Secret is written again even when unchanged (default SECRET_RESYNC_MS). */
  secretResyncMs?: number;
  /** Who may reach the nodes' admin port (each cluster's NetworkPolicy). */
  adminAccess: AdminAccess;
  /** Called when leadership is lost (the process should exit and start over). */
  onLostLeadership?: () => void;
}

/**
 * When a converged cluster comes back to write its Secrets again: the resync period plus up to a
 * quarter of it at random, so that clusters created (or an operator started) together do not
 * come back together — a thousand clusters would otherwise reconcile and write 3,000 Secrets
 * in one burst every period. Never earlier than the period, when the Secrets are due.
 */
export function resyncDelay(resyncMs: number, random: () => number = Math.random): number {
  return Math.floor(resyncMs * (1 + 0.25 * random()));
}

/** The work-queue key of the MailCluster an object belongs to, if any. */
export function ownerKey(kind: string, obj: KObject): string | undefined {
  const ns = obj.metadata.namespace;
  if (!ns) return undefined;
  if (kind === KIND) return `${ns}/${obj.metadata.name}`;
  const owner = (obj.metadata.ownerReferences ?? []).find((r) => r.controller && r.kind === KIND);
  if (owner?.name) return `${ns}/${owner.name}`;
  // Spool claims carry no owner reference: their cluster label names the MailCluster.
  const cluster = kind === 'PersistentVolumeClaim' ? obj.metadata.labels?.[LABEL_CLUSTER] : undefined;
  return cluster ? `${ns}/${cluster}` : undefined;
}

export class Manager {
  readonly metrics: OperatorMetrics;
  readonly identity = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly o: ManagerOptions;
  private readonly queue: WorkQueue;
  private readonly informers: InformerSet;
  private readonly reconciler: Reconciler;
  private readonly prober: QueueProber;
  private readonly ownWrites = new OwnWrites();
  private readonly slots: RolloutSlots;
  private readonly elector?: LeaderElector;
  private readonly lastErrors = new Map<string, string>();
  /** Clusters reconciled once by this process: their changes take the work queue's urgent lane. */
  private readonly reconciledOnce = new Set<string>();
  private readonly core: CoreV1Api;
  private masterKey?: Buffer;
  private server?: Server;
  private leading = false;
  private workersRunning: Promise<void>[] = [];
  private stopped = false;
  private readonly stopCountingApiRequests: () => void;
  private readonly closeApiConnections: () => Promise<void>;

  constructor(o: ManagerOptions) {
    this.o = o;
    this.metrics = createMetrics();
    const server = o.kubeConfig.getCurrentCluster()?.server;
    this.stopCountingApiRequests = server ? countApiRequests(server, (r) => this.metrics.apiRequests.inc(r)) : () => {};
    this.closeApiConnections = reuseApiConnections(o.kubeConfig);
    this.queue = new WorkQueue({ onDepth: (d) => this.metrics.workqueueDepth.set(d) });
    const objects = KubernetesObjectApi.makeApiClient(o.kubeConfig);
    const core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.core = core;
    this.informers = new InformerSet({
      kubeConfig: o.kubeConfig, objects, namespaces: o.namespaces, metrics: this.metrics, log: o.log,
      onChange: (kind, obj, deleted) => {
        const { namespace, name, resourceVersion } = obj.metadata;
        if (kind === KIND && namespace) this.ownWrites.observed(statusKey(namespace, name), resourceVersion, deleted);
        else this.ownWrites.observed(objectKey(kind, namespace, name), resourceVersion, deleted);
        const key = ownerKey(kind, obj);
        if (key && this.leading) this.queue.add(key, this.reconciledOnce.has(key));
      },
    });
    const events = new EventRecorder(core, o.log, FIELD_MANAGER, () => this.metrics.writes.inc({ verb: 'create', kind: 'Event' }));
    // Secret writes are fenced like every other write: a replica that may no longer lead writes nothing.
    const secrets = new SecretWriter(core, FIELD_MANAGER, (verb) => {
      if (!this.stillLeading()) throw new NotLeaderError();
      this.metrics.writes.inc({ verb, kind: 'Secret' });
    }, o.secretResyncMs);
    this.prober = new QueueProber({
      ...(o.probeConcurrency ? { concurrency: o.probeConcurrency } : {}),
      onAnswer: (key) => { if (this.leading) this.queue.add(key, true); },
      onProbe: (result) => this.metrics.queueProbes.inc({ result }),
      onInFlight: (n) => this.metrics.queueProbesInFlight.set(n),
    });
    this.slots = new RolloutSlots(o.maxConcurrentRollouts ?? 3, (key) => { if (this.leading) this.queue.add(key); }, (n) => this.metrics.rolloutsInProgress.set(n));
    this.reconciler = new Reconciler({
      prober: this.prober,
      slots: this.slots,
      ownWrites: this.ownWrites,
      informers: this.informers, objects, custom: o.kubeConfig.makeApiClient(CustomObjectsApi), core, events, metrics: this.metrics, log: o.log,
      fence: () => { if (!this.stillLeading()) throw new NotLeaderError(); },
      masterKey: () => { if (!this.masterKey) throw new Error('the master key is not loaded yet'); return this.masterKey; },
      adminAccess: o.adminAccess,
      secrets,
    });
    if (o.leaderElection) {
      this.elector = new LeaderElector({
        coordination: o.kubeConfig.makeApiClient(CoordinationV1Api),
        namespace: o.leaderElection.namespace,
        name: o.leaderElection.name ?? 'mailcluster-operator',
        identity: this.identity,
        ...(o.leaderElection.leaseDurationMs ? { leaseDurationMs: o.leaderElection.leaseDurationMs } : {}),
        ...(o.leaderElection.renewDeadlineMs ? { renewDeadlineMs: o.leaderElection.renewDeadlineMs } : {}),
        ...(o.leaderElection.retryPeriodMs ? { retryPeriodMs: o.leaderElection.retryPeriodMs } : {}),
        log: o.log,
        onStartedLeading: () => this.startLeading(),
        onStoppedLeading: () => this.stopLeading(),
      });
    }
  }

  get isLeader(): boolean { return this.leading; }

  /** May this replica write now? With leader election: only until its renew deadline. */
  stillLeading(): boolean {
    return this.leading && !this.stopped && (this.elector ? this.elector.stillLeading() : true);
  }
  get ready(): boolean { return this.informers.synced; }

  async start(): Promise<void> {
    if (this.o.metricsAddress) await this.serveMetrics(this.o.metricsAddress);
    this.masterKey = Buffer.isBuffer(this.o.masterKey) ? this.o.masterKey : await loadMasterKey(this.o.masterKey, this.core);
    await this.informers.start();
    this.o.log.info({ identity: this.identity, namespaces: this.o.namespaces ?? 'all', synced: this.informers.synced }, 'informers started');
    if (this.elector) this.elector.start();
    else this.startLeading();
  }

  private startLeading(): void {
    if (this.leading || this.stopped) return;
    this.leading = true;
    this.metrics.isLeader.set(1);
    const keys = new Set<string>();
    for (const mc of this.informers.list(KIND, '')) keys.add(`${mc.metadata.namespace}/${mc.metadata.name}`);
    for (const ns of this.o.namespaces ?? []) for (const mc of this.informers.list(KIND, ns)) keys.add(`${mc.metadata.namespace}/${mc.metadata.name}`);
    // Rollouts in progress hold their slots before any worker may start another (a restart
    // mid-rollout must not start more than the pace allows).
    void this.reconciler.seedRollouts([...keys]).catch((err: unknown) => {
      this.o.log.error({ err: describeError(err) }, 'reading the rollouts in progress failed; rollouts start as slots are seen');
    }).then(() => {
      if (!this.leading || this.stopped) return;
      this.o.log.info({ clusters: keys.size, rolling: this.slots.inProgress, waiting: this.slots.waitingCount }, 'rollouts in progress read from the cluster');
      const workers = this.o.workers ?? 8;
      for (let i = 0; i < workers; i++) this.workersRunning.push(this.worker());
      for (const key of keys) this.queue.add(key);
    });
  }

  private stopLeading(): void {
    if (!this.leading) return;
    this.leading = false;
    this.metrics.isLeader.set(0);
    this.queue.shutDown();
    this.o.log.error('lost leadership');
    this.o.onLostLeadership?.();
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const end = this.metrics.reconcileDuration.startTimer();
      try {
        const p = await this.reconciler.reconcile(key, this.lastErrors.get(key));
        this.metrics.reconciles.inc({ result: 'success' });
        if (p) this.reconciledOnce.add(key); else this.reconciledOnce.delete(key);
        // One line per reconcile at debug level: reconciles per cluster without a per-cluster metric label.
        this.o.log.debug({ cluster: key }, 'reconcile');
        this.queue.forget(key);
        const hadError = this.lastErrors.delete(key);
        if (hadError) this.queue.addAfter(key, 10); // clear the Degraded ReconcileError
        if (p?.requeueAfterMs !== undefined) this.queue.addAfter(key, p.requeueAfterMs);
        // The operator cannot watch Secrets: come back once per resync period to write them again.
        if (p) this.queue.addAfter(key, resyncDelay(this.o.secretResyncMs ?? SECRET_RESYNC_MS));
      } catch (err) {
        if (err instanceof NotLeaderError) { this.o.log.warn({ key }, 'write refused: no longer the leader'); continue; }
        if (isNamespaceTerminating(err)) {
          // the namespace's deletion removes the MailCluster; its watch event ends this key
          this.metrics.reconciles.inc({ result: 'namespace-terminating' });
          this.queue.forget(key);
          this.lastErrors.delete(key);
          this.o.log.info({ key }, 'namespace is being deleted: nothing more to create there');
          continue;
        }
        const message = describeError(err);
        this.metrics.reconciles.inc({ result: 'error' });
        this.metrics.reconcileErrors.inc();
        this.lastErrors.set(key, message);
        const delay = this.queue.addRateLimited(key);
        this.o.log.warn({ key, err: message, retryInMs: delay }, 'reconcile failed');
        await this.reconciler.recordError(key, message);
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  private serveMetrics(address: string): Promise<void> {
    const i = address.lastIndexOf(':');
    let host = address.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
    // Run as a plain process beside others on one host (MAILCLUSTER_BIND_ADDRESS set), a wildcard address means that address.
    if ((host === '0.0.0.0' || host === '::') && process.env.MAILCLUSTER_BIND_ADDRESS) host = process.env.MAILCLUSTER_BIND_ADDRESS;
    const port = Number(address.slice(i + 1));
    if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-address ${JSON.stringify(address)}: expected host:port`);
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') { res.end('ok\n'); return; }
      if (path === '/readyz') {
        const ok = this.ready;
        res.statusCode = ok ? 200 : 503;
        res.end(ok ? 'ok\n' : 'informers not synced\n');
        return;
      }
      if (path === '/metrics') {
        this.metrics.registry.metrics().then((text) => {
          res.setHeader('Content-Type', this.metrics.registry.contentType);
          res.end(text);
        }, (err: unknown) => { res.statusCode = 500; res.end(String(err)); });
        return;
      }
      res.statusCode = 404;
      res.end('not found\n');
    });
    const server = this.server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        this.o.log.info({ address: server.address() }, 'serving /metrics, /healthz and /readyz');
        resolve();
      });
    });
  }

  /** The bound metrics address (for tests that pass port 0). */
  get metricsPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.leading = false;
    this.queue.shutDown();
    this.prober.stop();
    await Promise.race([Promise.all(this.workersRunning), new Promise((r) => setTimeout(r, 5000))]);
    await this.elector?.stop();
    await this.informers.stop();
    this.stopCountingApiRequests();
    await this.closeApiConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections?.();
  }
}
