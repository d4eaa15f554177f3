// A mail node: wires config, spool, delivery queue, inbound SMTP and admin HTTP, and
// applies reloads. ETRN/MAILQv2/drain attach through the public members and hooks here.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { AdminServer, sendJson, sendText } from './admin/server.ts';
import { createMetrics, registerSpoolMetrics } from './admin/metrics.ts';
import type { Metrics } from './admin/metrics.ts';
import { loadConfigDir, readConfigMapFiles, resolveUnderRoot } from './config/load.ts';
import type { ConfigMapContent, Env, LoadedConfig, TlsMaterial } from './config/load.ts';
import { ConfigSourceChooser, contentHash } from './config/source.ts';
import { ConfigMapWatch, type ConfigMapObject } from './kube/configmap-watch.ts';
import { Counter, Gauge } from 'prom-client';
import { ConfigError } from './config/types.ts';
import type { NodeConfig } from './config/types.ts';
import { DirectoryWatcher } from './config/watch.ts';
import { DeliveryQueue } from './delivery/queue.ts';
import type { QueueSettings } from './delivery/queue.ts';
import { TransportPool } from './delivery/transports.ts';
import type { Sender, TransportSettings } from './delivery/transports.ts';
import { ThreadedTransports } from './delivery/threaded-transports.ts';
import { createLogger } from './log.ts';
import { MxRouter } from './routing/dns.ts';
import { MtaStsResolver, StsMxRouter } from './routing/mta-sts.ts';
import { InboundSmtp } from './smtp/server.ts';
import { peerName } from './etrn/peers.ts';
import { attachEtrn } from './etrn/attach.ts';
import { attachDrain } from './drain/drainer.ts';
import { attachQueueApi } from './admin/queue-api.ts';
import { Spool } from './spool/spool.ts';
import { FreeSpace } from './storage/free-space.ts';
import { queueReport } from './admin/queue-report.ts';
import type { QueueObservation } from './admin/queue-report.ts';
import type { SpoolOptions } from './spool/spool.ts';

export interface NodeOptions {
  env?: Env;
  log?: Logger;
  /** Debounce of config-dir changes (ms). */
  reloadDebounceMs?: number;
  dnsCacheMs?: number;
  proxyHeaderTimeoutMs?: number;
  /** Connect/greeting and socket timeouts of outbound SMTP (ms). */
  deliveryConnectTimeoutMs?: number;
  deliverySocketTimeoutMs?: number;
  /** Handle SIGHUP (reload) and SIGTERM/SIGINT (drain within the grace period, then stop). */
  signals?: boolean;
}

function queueSettings(c: NodeConfig, budget?: number): QueueSettings {
  return {
    hostname: c.hostname,
    smtpPort: c.smtpPort,
    retryIntervalMs: c.retryInterval * 1000,
    maxRetryIntervalMs: c.maxRetryInterval * 1000,
    queueLifetimeMs: c.queueLifetime * 1000,
    concurrency: c.deliveryConcurrency,
    ...(budget !== undefined ? { contentBudgetBytes: budget } : {}),
  };
}

function mtaStsSettings(c: NodeConfig) {
  return { enabled: c.security.mtaSts, dnsServers: c.dnsServers, ...(c.security.smtpTlsCa ? { ca: c.security.smtpTlsCa } : {}) };
}

function numberEnv(env: Env, key: string): number | undefined {
  const v = env[key];
  return v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined;
}

// Spool knobs for tests and benchmarks (defaults suit production): the compaction
// budget, the low-space mark, segment size, and a clock scale that compresses the
// policy's hours into minutes.
function spoolTuning(env: Env): SpoolOptions {
  const scale = numberEnv(env, 'MAILCLUSTER_SPOOL_CLOCK_SCALE');
  const started = Date.now();
  const compaction: SpoolOptions['compaction'] = {};
  const budget = numberEnv(env, 'MAILCLUSTER_SPOOL_COMPACT_BYTES_PER_HOUR');
  const low = numberEnv(env, 'MAILCLUSTER_SPOOL_LOW_SPACE_BYTES');
  if (budget !== undefined) compaction.budgetBytesPerHour = budget;
  if (low !== undefined) compaction.lowSpaceBytes = low;
  return {
    compaction,
    // benchmark baseline only: acceptance without fdatasync (a 250 would then not be durable)
    ...(env.MAILCLUSTER_SPOOL_FSYNC === '0' ? { fsync: false } : {}),
    segmentBytes: numberEnv(env, 'MAILCLUSTER_SPOOL_SEGMENT_BYTES'),
    compactIntervalMs: numberEnv(env, 'MAILCLUSTER_SPOOL_COMPACT_INTERVAL_MS'),
    ...(scale !== undefined ? { now: () => started + (Date.now() - started) * scale } : {}),
  };
}

export class MailNode {
  config: NodeConfig;
  private tlsMaterial: TlsMaterial | null;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly spool: Spool;
  readonly router: MxRouter;
  private readonly mtaSts: MtaStsResolver;
  /** Outbound SMTP: in the delivery thread unless MAILCLUSTER_DELIVERY_THREAD=0. */
  readonly transports: Sender;
  /** The queue API: flush, list, readContent, markRecipientsDone, pause/resume. */
  readonly queue: DeliveryQueue;
  /** Inbound SMTP: setAccepting, onConnection, server (the SMTPServer instance). */
  readonly smtp: InboundSmtp;
  /** Admin HTTP: route(method, path, handler). */
  readonly admin: AdminServer;
  /** Free space of the spool filesystem against PARAM queue-minfree. */
  readonly freeSpace: FreeSpace;
  private watcher: DirectoryWatcher;
  /** The node's own ConfigMap through the API server (MAILCLUSTER_CONFIGMAP set), and which copy wins. */
  private configMapWatch: ConfigMapWatch | null = null;
  private apiConfig: { content: ConfigMapContent; resourceVersion: string } | null = null;
  private readonly configSource = new ConfigSourceChooser();
  private readonly env: Env;
  /** MAILCLUSTER_DELIVERY_CONTENT_BUDGET_BYTES: content held for delivery at once (default 32 MiB; a streamed blob counts 256 KiB). */
  private readonly deliveryContentBudget: number | undefined;
  private readonly transportTimeouts: { connect: number; socket: number };
  private reloadHooks: Array<(config: NodeConfig, previous: NodeConfig) => void | Promise<void>> = [];
  private readyChecks: Array<() => boolean> = [];
  private stopHooks: Array<() => Promise<void>> = [];
  private draining = false;
  private listening = false;
  private reloading: Promise<void> = Promise.resolve();
  private stopping = false;

  private constructor(loaded: LoadedConfig, spool: Spool, opts: NodeOptions, log: Logger) {
    this.env = opts.env ?? process.env;
    this.deliveryContentBudget = numberEnv(this.env, 'MAILCLUSTER_DELIVERY_CONTENT_BUDGET_BYTES');
    this.config = loaded.config;
    this.tlsMaterial = loaded.tlsMaterial;
    this.log = log;
    this.metrics = createMetrics();
    this.spool = spool;
    registerSpoolMetrics(this.metrics.registry, spool);
    spool.onCommit = (records, seconds) => {
      this.metrics.spoolFsyncs.inc();
      this.metrics.spoolCommit.observe(seconds);
      this.metrics.spoolCommitRecords.observe(records);
    };
    // MTA-STS (PARAM mta-sts on): enforce-mode domains are delivered at TLS level `verify`
    this.mtaSts = new MtaStsResolver(
      () => this.transports.configure(this.transportSettings(this.config)),
      (msg, details) => log.info({ event: 'mta-sts', ...details }, msg),
    );
    this.mtaSts.configure(mtaStsSettings(this.config));
    this.router = new StsMxRouter(opts.dnsCacheMs ?? numberEnv(this.env, 'MAILCLUSTER_DNS_CACHE_MS') ?? 5000, this.mtaSts);
    this.router.configure(this.config.dnsServers, this.config.selfAddresses);
    this.transportTimeouts = {
      connect: opts.deliveryConnectTimeoutMs ?? numberEnv(this.env, 'MAILCLUSTER_DELIVERY_CONNECT_TIMEOUT_MS') ?? 30_000,
      socket: opts.deliverySocketTimeoutMs ?? numberEnv(this.env, 'MAILCLUSTER_DELIVERY_SOCKET_TIMEOUT_MS') ?? 300_000,
    };
    this.transports = this.env.MAILCLUSTER_DELIVERY_THREAD === '0'
      ? new TransportPool(this.transportSettings(this.config))
      : new ThreadedTransports(this.transportSettings(this.config), (err) => log.error({ event: 'delivery', err: err.message }, 'delivery thread failed, restarting it'));
    this.queue = new DeliveryQueue(spool, this.router, this.transports, queueSettings(this.config, this.deliveryContentBudget), log.child({ component: 'delivery' }), this.metrics);
    this.smtp = new InboundSmtp(this.config, this.tlsMaterial, this.queue, log.child({ component: 'smtp' }), this.metrics, {
      proxyHeaderTimeoutMs: opts.proxyHeaderTimeoutMs ?? numberEnv(this.env, 'MAILCLUSTER_PROXY_TIMEOUT_MS'),
      blobThresholdBytes: numberEnv(this.env, 'MAILCLUSTER_BLOB_THRESHOLD_BYTES'),
      dataMemoryBudgetBytes: numberEnv(this.env, 'MAILCLUSTER_DATA_MEMORY_BUDGET_BYTES'),
    });
    this.freeSpace = new FreeSpace(spool.dir, this.config.queueMinFree);
    this.smtp.setStorageCheck((need) => this.freeSpace.check(need));
    this.admin = new AdminServer(log.child({ component: 'admin' }));
    this.admin.setAdminCredential(() => this.config.security.adminTokenSha256);
    this.registerAdminRoutes();
    this.watcher = new DirectoryWatcher(
      () => { void this.reload('config change'); },
      (dir, err) => this.log.warn({ event: 'watch', dir, err: err.message }, 'cannot watch directory'),
      opts.reloadDebounceMs ?? numberEnv(this.env, 'MAILCLUSTER_RELOAD_DEBOUNCE_MS') ?? 250,
    );
    this.watchTargets(loaded);
  }

  /**
   * MAILCLUSTER_CONFIGMAP=<name> (the operator sets it): watch that ConfigMap through the API
   * server and apply a change at once, instead of waiting for the kubelet to refresh the
   * mounted files (its sync period, about a minute). The files stay the fallback.
   */
  private startConfigMapWatch(): void {
    const name = this.env.MAILCLUSTER_CONFIGMAP;
    if (!name || this.env.MAILCLUSTER_CONFIGMAP_WATCH === '0') return;
    const r = this.metrics.registry;
    const up = new Gauge({ name: 'mailcluster_config_api_watch_up', help: 'The watch of the node\'s ConfigMap through the API server is connected (1) or away (0; the node runs from the mounted files).', registers: [r] });
    const events = new Counter({ name: 'mailcluster_config_api_updates_total', help: 'ConfigMap contents received through the API server (list and watch events).', registers: [r] });
    const log = this.log.child({ component: 'configmap-watch', configMap: name });
    this.configMapWatch = new ConfigMapWatch({
      env: this.env,
      name,
      ...(numberEnv(this.env, 'MAILCLUSTER_CONFIGMAP_WATCH_BACKOFF_MS') !== undefined
        ? { backoffMs: { initial: numberEnv(this.env, 'MAILCLUSTER_CONFIGMAP_WATCH_BACKOFF_MS')!, max: 30_000 } } : {}),
      events: {
        content: (cm, from) => { events.inc(); this.configMapContent(cm, from); },
        live: (live, reason) => {
          up.set(live ? 1 : 0);
          this.configSource.apiLive(live);
          if (live) log.info({ event: 'configmap-watch', live, reason }, 'watching the ConfigMap through the API server');
          else log.warn({ event: 'configmap-watch', live, reason }, `ConfigMap watch away (${reason}): running from the mounted files, retrying with backoff`);
          // Away: a file that moved on meanwhile may now be the newest copy.
          if (!live) void this.reload('configmap watch away');
        },
        disabled: (reason) => log.info({ event: 'configmap-watch', reason }, `no ConfigMap watch (${reason}): running from the mounted files only`),
      },
    });
    this.configMapWatch.start();
  }

  private configMapContent(cm: ConfigMapObject, from: 'list' | 'watch'): void {
    const data = cm.data ?? {};
    const rv = cm.metadata?.resourceVersion ?? '';
    const smtp = data['smtpserver.conf'];
    const zm = data['zmailer.conf'];
    const shownAs = `configmap ${cm.metadata?.namespace ?? ''}/${cm.metadata?.name ?? ''}@${rv}`;
    if (typeof smtp !== 'string' || typeof zm !== 'string') {
      this.metrics.reloads.inc({ result: 'error' });
      this.log.error({ event: 'reload', reason: 'configmap watch', result: 'error', configMap: shownAs },
        `configuration not reloaded, keeping the last good one: ${shownAs} lacks smtpserver.conf or zmailer.conf`);
      return;
    }
    const hash = contentHash(smtp, zm)!;
    this.apiConfig = { content: { shownAs, smtpserverConf: smtp, zmailerConf: zm }, resourceVersion: rv };
    this.configSource.apiContent(hash);
    void this.reload(`configmap ${from} ${rv}`);
  }

  /** Which copy of the ConfigMap the running config came from (logged with each reload). */
  private runningFrom: 'api' | 'file' = 'file';

  /** Loads the config (throws ConfigError), opens and recovers the spool, and starts listening. */
  static async start(configDir: string, opts: NodeOptions = {}): Promise<MailNode> {
    const env = opts.env ?? process.env;
    const log = opts.log ?? createLogger();
    const loaded = loadConfigDir(configDir, env);
    const spool = await Spool.open(loaded.config.postOffice, {
      commitConcurrency: numberEnv(env, 'MAILCLUSTER_COMMIT_CONCURRENCY'),
      ...spoolTuning(env),
      warn: (msg, details) => log.warn({ event: 'spool', ...details }, msg),
    });
    const node = new MailNode(loaded, spool, opts, log);
    log.info({ event: 'start', hostname: loaded.config.hostname, queued: spool.messages.size, postOffice: loaded.config.postOffice, peers: loaded.config.etrnCluster.map(peerName) }, 'mail node starting');
    await node.smtp.listen(node.config.bindSmtp);
    await node.admin.listen(node.config.bindAdmin);
    // ETRN over SMTP and MAILQv2, and POST /drain (etrn/, mailq/, drain/)
    const etrn = await attachEtrn(node);
    const drainer = attachDrain(node);
    // queue operations (issue 14), behind the admin credential of contract 1 (AdminServer's guard)
    attachQueueApi(node, (method, path, handler) => node.admin.protectedRoute(method, path, handler));
    node.onStop(async () => { await drainer.stop(); await etrn.close(); });
    node.listening = true;
    // After the listeners are up: a newer ConfigMap from the API server is then a plain reload.
    node.startConfigMapWatch();
    if (opts.signals) {
      process.on('SIGHUP', () => { void node.reload('SIGHUP'); });
      // SIGTERM (a pod's deletion; terminationGracePeriodSeconds 60): drain as POST /drain
      // does, bounded by the grace period, then stop. Mail not handed off stays on the
      // spool for the next start. A second signal stops at once (same outcome, sooner).
      const graceMs = numberEnv(env, 'MAILCLUSTER_TERM_GRACE_MS') ?? 50_000;
      let signals = 0;
      const stop = (sig: string) => {
        if (++signals > 1) { log.info({ event: 'stop', signal: sig }, 'second signal: stopping now'); return; }
        log.info({ event: 'stop', signal: sig, graceMs }, 'draining, then stopping');
        const deadline = Date.now() + graceMs;
        drainer.drainUntil(deadline, () => signals > 1)
          .then((drained) => {
            log.info({ event: 'stop', drained, queued: node.spool.messages.size }, drained ? 'drained, stopping' : 'stopping; what is queued stays on the spool');
            return node.stop(Math.max(2000, deadline - Date.now()));
          })
          .then(() => process.exit(0), () => process.exit(1));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    }
    return node;
  }

  private transportSettings(c: NodeConfig): TransportSettings {
    return {
      hostname: c.hostname,
      localAddress: c.outboundAddress,
      maxConnectionsPerDestination: c.deliveryConcurrency,
      connectionTimeoutMs: this.transportTimeouts.connect,
      socketTimeoutMs: this.transportTimeouts.socket,
      tls: {
        defaultLevel: c.security.smtpTlsSecurityLevel,
        // an explicit smtp-tls-policy entry wins over an MTA-STS policy
        policy: { ...Object.fromEntries((this.mtaSts?.enforced() ?? []).map((d) => [d, 'verify' as const])), ...c.security.smtpTlsPolicy },
        ...(c.security.smtpTlsCa ? { ca: c.security.smtpTlsCa } : {}),
      },
    };
  }

  private watchTargets(loaded: LoadedConfig): void {
    this.watcher.setTargets([resolveUnderRoot(loaded.config.configDir, this.env)], loaded.extraFiles);
  }

  private registerAdminRoutes(): void {
    this.admin.route('GET', '/healthz', (_req, res) => sendText(res, 200, 'ok\n'));
    this.admin.route('GET', '/readyz', (_req, res) => {
      const ready = this.isReady();
      sendText(res, ready ? 200 : 503, ready ? 'ready\n' : this.draining ? 'draining\n' : 'not ready\n');
    });
    this.admin.route('GET', '/metrics', async (_req, res) => {
      this.metrics.queueMessages.set(this.spool.messages.size);
      sendText(res, 200, await this.metrics.registry.metrics(), this.metrics.registry.contentType);
    });
    this.admin.route('GET', '/queue', (_req, res) => {
      sendJson(res, 200, { ...this.queue.summary(), accepting: this.smtp.isAccepting, ...queueReport(this.queueObservation(), Date.now()) });
    });
  }

  /** What GET /queue and the drain decide on (BRIEF contract 2). */
  queueObservation(): QueueObservation {
    const summary = this.queue.summary();
    return {
      total: summary.total,
      deferred: summary.deferred,
      active: this.queue.inFlightCount,
      held: summary.held,
      oldestReceivedAt: summary.oldest === null ? null : Date.parse(summary.oldest),
      draining: this.draining,
      listening: this.smtp.isListening,
      sessions: this.smtp.sessionCount,
      transactions: this.smtp.transactionsInFlight,
    };
  }

  /** Ready: listeners up and not draining (and every registered check passes). */
  isReady(): boolean {
    return this.listening && !this.draining && !this.stopping && this.readyChecks.every((c) => c());
  }

  /** Draining makes /readyz fail (the operator relabels and drains the pod). */
  setDraining(draining: boolean): void {
    this.draining = draining;
    this.log.info({ event: 'draining', draining }, draining ? 'node is draining' : 'node is no longer draining');
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Adds a readiness condition (say, the MAILQv2 listener is up). */
  addReadyCheck(check: () => boolean): void {
    this.readyChecks.push(check);
  }

  /** Called after every successful reload with the new and the previous config (rebind MAILQ here). */
  onReload(hook: (config: NodeConfig, previous: NodeConfig) => void | Promise<void>): void {
    this.reloadHooks.push(hook);
  }

  /** Called first when the node stops (closes the MAILQv2 listener, ends a drain). */
  onStop(hook: () => Promise<void>): void {
    this.stopHooks.push(hook);
  }

  /** Re-reads the config dir; a bad config is logged (file:line) and the last good one stays. */
  reload(reason: string): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload(reason));
    return this.reloading;
  }

  private async doReload(reason: string): Promise<void> {
    if (this.stopping) return;
    let loaded: LoadedConfig;
    const files = readConfigMapFiles(this.config.configDir, this.env);
    const source = this.configSource.choose(contentHash(files.smtpserverConf, files.zmailerConf));
    const fromApi = source === 'api' && this.apiConfig ? this.apiConfig.content : undefined;
    try {
      loaded = loadConfigDir(this.config.configDir, this.env, fromApi);
    } catch (err) {
      this.metrics.reloads.inc({ result: 'error' });
      const e = err as Error;
      this.log.error({ event: 'reload', reason, result: 'error', err: e.message, ...(e instanceof ConfigError ? { file: e.file, line: e.line } : {}) },
        `configuration not reloaded, keeping the last good one: ${e.message}`);
      return;
    }
    const previous = this.config;
    const c = loaded.config;
    const tlsSame = (this.tlsMaterial === null && loaded.tlsMaterial === null) ||
      (this.tlsMaterial !== null && loaded.tlsMaterial !== null && this.tlsMaterial.cert.equals(loaded.tlsMaterial.cert) && this.tlsMaterial.key.equals(loaded.tlsMaterial.key));
    this.watchTargets(loaded);
    const sourceChanged = this.runningFrom !== (fromApi ? 'api' : 'file');
    this.runningFrom = fromApi ? 'api' : 'file';
    if (isDeepStrictEqual(previous, c) && tlsSame) {
      this.log.debug({ event: 'reload', reason, result: 'unchanged', source: this.runningFrom, ...(sourceChanged ? { sourceChanged } : {}) }, 'configuration unchanged');
      return;
    }
    if (c.postOffice !== previous.postOffice) {
      this.log.warn({ event: 'reload', old: previous.postOffice, new: c.postOffice }, 'POSTOFFICE changed: the spool moves only at a restart, keeping the old one');
      c.postOffice = previous.postOffice;
    }
    this.config = c;
    this.tlsMaterial = loaded.tlsMaterial;
    this.router.configure(c.dnsServers, c.selfAddresses);
    this.mtaSts.configure(mtaStsSettings(c));
    this.transports.configure(this.transportSettings(c));
    this.queue.configure(queueSettings(c, this.deliveryContentBudget));
    this.smtp.configure(c, loaded.tlsMaterial);
    this.freeSpace.minFree = c.queueMinFree;
    try {
      await this.smtp.listen(c.bindSmtp);
      await this.admin.listen(c.bindAdmin);
    } catch (err) {
      this.log.error({ event: 'reload', err: (err as Error).message }, 'cannot bind a changed listen address, keeping the old listener');
    }
    for (const h of this.reloadHooks) {
      try { await h(c, previous); } catch (err) { this.log.error({ event: 'reload', err: (err as Error).message }, 'reload hook failed'); }
    }
    this.metrics.reloads.inc({ result: 'ok' });
    // peers: what this node now serves (ETRN fan-out, drain), so an operator (or a test) sees when a scale event reached it
    this.log.info({ event: 'reload', reason, result: 'ok', tlsChanged: !tlsSame, source: this.runningFrom, ...(fromApi ? { configMap: fromApi.shownAs } : {}), peers: c.etrnCluster.map(peerName) }, 'configuration reloaded');
  }

  /** Stops listening, lets running deliveries finish (bounded), closes the spool. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher.close();
    this.configMapWatch?.stop();
    for (const h of this.stopHooks) await h().catch(() => {});
    this.smtp.setAccepting(false);
    await this.smtp.close().catch(() => {});
    await this.admin.close().catch(() => {});
    this.queue.pause();
    await Promise.race([this.queue.waitIdle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
    this.queue.stop();
    this.transports.close();
    await this.spool.close();
  }
}
