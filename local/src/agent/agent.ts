// The node agent: the kubelet (and the scheduler and a volume provisioner) of local mode.
// It registers one Node and keeps it Ready with Lease heartbeats, binds every unscheduled pod
// to it, runs each bound pod as local processes (pod-worker.ts), keeps ConfigMap/Secret
// volumes current, and provisions a hostPath PersistentVolume for every pending claim.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { cpus, hostname, totalmem, release, arch as osArch } from 'node:os';
import { join } from 'node:path';
import {
  CoordinationV1Api, CoreV1Api, KubeConfig, PatchStrategy, StorageV1Api, setHeaderOptions,
  type KubernetesObject,
  type V1ConfigMap, type V1PersistentVolume, type V1PersistentVolumeClaim, type V1Pod, type V1Secret,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { restartingInformer, type Cache } from '../informer.ts';
import { AddressPool } from './address-range.ts';
import { defaultBackoff, type BackoffPolicy } from './backoff.ts';
import { PodWorker, type WorkerContext } from './pod-worker.ts';
import { rfc3339 } from './pod-status.ts';
import { referencedObjects, type TokenSpec } from './volumes.ts';

export const provisionerName = 'mailcluster.io/local-hostpath';
export const storageClassName = 'mailcluster-local';

export interface NodeAgentOptions {
  kubeConfig: KubeConfig;
  /** Where pods' directories, logs and volumes live. */
  dataDir: string;
  /** CIDR in 127.0.0.0/8 that pod addresses come from, e.g. 127.30.0.0/16. */
  podRange: string;
  log: Logger;
  nodeName?: string;
  /** The node's own address (hostIP), 127.0.0.1 by default. */
  hostIP?: string;
  backoff?: BackoffPolicy;
  leaseDurationSeconds?: number;
  /** Grace period cap (seconds) for containers when the agent itself stops. */
  stopGraceSeconds?: number;
  initialReadinessPollMs?: number;
}


const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategicPatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

export class NodeAgent {
  readonly nodeName: string;
  readonly hostIP: string;
  readonly pool: AddressPool;
  readonly #o: NodeAgentOptions;
  readonly #log: Logger;
  readonly #core: CoreV1Api;
  readonly #coordination: CoordinationV1Api;
  readonly #storage: StorageV1Api;
  readonly #workers = new Map<string, PodWorker>();
  readonly #binding = new Set<string>();
  readonly #provisioning = new Set<string>();
  readonly #allocatable: Record<string, string>;
  #informers: Cache<KubernetesObject>[] = [];
  #pods!: Cache<V1Pod>;
  #configMaps!: Cache<V1ConfigMap>;
  #secrets!: Cache<V1Secret>;
  #claims!: Cache<V1PersistentVolumeClaim>;
  #volumes!: Cache<V1PersistentVolume>;
  #leaseTimer: NodeJS.Timeout | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #exitHook = () => { for (const w of this.#workers.values()) w.killNow(); };

  constructor(options: NodeAgentOptions) {
    this.#o = options;
    this.nodeName = options.nodeName ?? 'local-node';
    this.hostIP = options.hostIP ?? '127.0.0.1';
    this.pool = new AddressPool(options.podRange);
    this.#log = options.log.child({ component: 'node-agent', node: this.nodeName });
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#coordination = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#storage = options.kubeConfig.makeApiClient(StorageV1Api);
    this.#allocatable = {
      cpu: String(cpus().length),
      memory: `${Math.floor(totalmem() / 1024)}Ki`,
      pods: '110',
      'ephemeral-storage': '100Gi',
    };
  }

  get podsDir(): string { return join(this.#o.dataDir, 'pods'); }
  get volumesDir(): string { return join(this.#o.dataDir, 'volumes'); }

  /** Every pid of every container process this agent runs now. */
  get pids(): number[] {
    return [...this.#workers.values()].flatMap((w) => w.pids);
  }

  async start(): Promise<void> {
    await mkdir(this.podsDir, { recursive: true });
    await mkdir(this.volumesDir, { recursive: true });
    process.on('exit', this.#exitHook);
    await this.#registerNode();
    await this.#renewLease();
    this.#leaseTimer = setInterval(() => { this.#renewLease().catch((err) => this.#log.warn({ err: (err as Error).message }, 'lease renewal failed')); }, (this.#o.leaseDurationSeconds ?? 40) * 250);
    this.#statusTimer = setInterval(() => { this.#patchNodeStatus().catch((err) => this.#log.warn({ err: (err as Error).message }, 'node status update failed')); }, 60_000);
    await this.#ensureStorageClass();

    this.#configMaps = this.#informer<V1ConfigMap>('/api/v1/configmaps', () => this.#core.listConfigMapForAllNamespaces());
    this.#secrets = this.#informer<V1Secret>('/api/v1/secrets', () => this.#core.listSecretForAllNamespaces());
    this.#claims = this.#informer<V1PersistentVolumeClaim>('/api/v1/persistentvolumeclaims', () => this.#core.listPersistentVolumeClaimForAllNamespaces());
    this.#volumes = this.#informer<V1PersistentVolume>('/api/v1/persistentvolumes', () => this.#core.listPersistentVolume());
    this.#pods = this.#informer<V1Pod>('/api/v1/pods', () => this.#core.listPodForAllNamespaces());

    for (const cache of [this.#configMaps, this.#secrets] as Cache<V1ConfigMap | V1Secret>[]) {
      const kind = cache === this.#configMaps ? 'configMaps' : 'secrets';
      const onChange = (obj: V1ConfigMap | V1Secret) => this.#objectChanged(kind, obj);
      cache.on('add', onChange);
      cache.on('update', onChange);
      cache.on('delete', onChange);
    }
    this.#claims.on('add', (pvc) => this.#claimChanged(pvc));
    this.#claims.on('update', (pvc) => this.#claimChanged(pvc));
    this.#volumes.on('update', (pv) => this.#volumeChanged(pv));
    this.#volumes.on('add', (pv) => this.#volumeChanged(pv));
    this.#volumes.on('delete', (pv) => this.#volumeDeleted(pv));
    this.#pods.on('add', (pod) => this.#podChanged(pod));
    this.#pods.on('update', (pod) => this.#podChanged(pod));
    this.#pods.on('delete', (pod) => this.#podDeleted(pod));

    // Pods last: their volumes need the other caches filled.
    for (const informer of this.#informers) {
      if (informer !== this.#pods) await informer.start();
    }
    await this.#pods.start();
    await this.#removeOrphanPodDirs();
    this.#log.info({ podRange: this.#o.podRange }, 'node agent started');
  }

  /** Stops watching and stops every container (the pods stay in the API, as on a node shutdown). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#leaseTimer);
    clearInterval(this.#statusTimer);
    await Promise.all(this.#informers.map((i) => i.stop().catch(() => undefined)));
    const cap = this.#o.stopGraceSeconds ?? 5;
    await Promise.all([...this.#workers.values()].map((w) => w.terminate(Math.min(cap, w.pod.spec?.terminationGracePeriodSeconds ?? 30), false, false)));
    process.off('exit', this.#exitHook);
    this.#log.info('node agent stopped');
  }

  #informer<T extends KubernetesObject>(path: string, list: () => Promise<unknown>): Cache<T> {
    const informer = restartingInformer<T>(this.#o.kubeConfig, path, list, this.#log, () => this.#stopped);
    this.#informers.push(informer as unknown as Cache<KubernetesObject>);
    return informer;
  }

  // ---- Node registration and heartbeats ----

  #nodeStatus(): Record<string, unknown> {
    const now = rfc3339(new Date());
    const condition = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now });
    return {
      capacity: this.#allocatable,
      allocatable: this.#allocatable,
      addresses: [{ type: 'InternalIP', address: this.hostIP }, { type: 'Hostname', address: this.nodeName }],
      conditions: [
        condition('Ready', 'True', 'KubeletReady', 'mailcluster local node agent is posting ready status'),
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'node has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'node has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'node has sufficient PID available'),
      ],
      nodeInfo: {
        machineID: '', systemUUID: '', bootID: '', kernelVersion: release(), osImage: `local processes on ${hostname()}`,
        containerRuntimeVersion: 'mailcluster-local://0.1.0', kubeletVersion: 'v1.36.3', kubeProxyVersion: '',
        operatingSystem: 'linux', architecture: osArch() === 'x64' ? 'amd64' : osArch(),
      },
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
    };
  }

  async #registerNode(): Promise<void> {
    const body = {
      apiVersion: 'v1', kind: 'Node',
      metadata: {
        name: this.nodeName,
        labels: { 'kubernetes.io/hostname': this.nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'mailcluster.io/local': 'true' },
      },
      spec: {},
      status: this.#nodeStatus(),
    };
    try {
      await this.#core.createNode({ body: body as never });
      this.#log.info('node registered');
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    await this.#patchNodeStatus();
  }

  async #patchNodeStatus(): Promise<void> {
    await this.#core.patchNodeStatus({ name: this.nodeName, body: { status: this.#nodeStatus() } }, strategicPatch);
  }

  async #renewLease(): Promise<void> {
    const now = new Date().toISOString().replace('Z', '000Z'); // MicroTime
    const spec = { holderIdentity: this.nodeName, leaseDurationSeconds: this.#o.leaseDurationSeconds ?? 40, renewTime: now };
    try {
      await this.#coordination.patchNamespacedLease({ name: this.nodeName, namespace: 'kube-node-lease', body: { spec } }, mergePatch);
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      const node = await this.#core.readNode({ name: this.nodeName });
      await this.#coordination.createNamespacedLease({
        namespace: 'kube-node-lease',
        body: {
          metadata: { name: this.nodeName, namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.nodeName, uid: node.metadata!.uid! }] },
          spec: spec as never,
        },
      });
    }
  }

  async #ensureStorageClass(): Promise<void> {
    try {
      await this.#storage.createStorageClass({
        body: {
          metadata: { name: storageClassName, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
          provisioner: provisionerName,
          reclaimPolicy: 'Delete',
          volumeBindingMode: 'Immediate',
        },
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }

  // ---- Pods ----

  #podChanged(pod: V1Pod): void {
    if (this.#stopped) return;
    const meta = pod.metadata!;
    const key = meta.uid!;
    if (!pod.spec?.nodeName) {
      if (!meta.deletionTimestamp) void this.#bind(pod);
      return;
    }
    if (pod.spec.nodeName !== this.nodeName) return;
    const worker = this.#workers.get(key);
    if (meta.deletionTimestamp) {
      const grace = meta.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
      if (worker) { worker.update(pod); void worker.terminate(grace, true); } else void this.#deleteNow(pod);
      return;
    }
    if (worker) { worker.update(pod); return; }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    const podIP = (pod.status?.podIP && this.pool.reserve(key, pod.status.podIP)) ? pod.status.podIP : this.pool.allocate(key);
    const created = new PodWorker(this.#workerContext(), pod, podIP, this.podsDir);
    this.#workers.set(key, created);
    created.start().catch((err) => this.#log.error({ err: (err as Error).message, pod: meta.name }, 'pod start failed'));
  }

  #podDeleted(pod: V1Pod): void {
    const worker = this.#workers.get(pod.metadata!.uid!);
    if (!worker) return;
    const grace = pod.metadata!.deletionGracePeriodSeconds ?? 0;
    void worker.terminate(grace, false, true);
  }

  async #bind(pod: V1Pod): Promise<void> {
    const key = pod.metadata!.uid!;
    if (this.#binding.has(key)) return;
    this.#binding.add(key);
    try {
      await this.#core.createNamespacedBinding({
        namespace: pod.metadata!.namespace!,
        body: { metadata: { name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, uid: key }, target: { apiVersion: 'v1', kind: 'Node', name: this.nodeName } },
      });
      this.#log.info({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}` }, 'pod bound');
      // Start it now rather than after the watch reports the binding (a round trip saved).
      const cached = this.#pods.get(pod.metadata!.name!, pod.metadata!.namespace);
      if (cached?.metadata?.uid === key && !cached.spec?.nodeName && !cached.metadata?.deletionTimestamp) {
        this.#podChanged({ ...cached, spec: { ...cached.spec!, nodeName: this.nodeName } });
      }
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== 409 && code !== 404) this.#log.warn({ err: (err as Error).message }, 'pod binding failed');
    } finally {
      this.#binding.delete(key);
    }
  }

  async #deleteNow(pod: V1Pod): Promise<void> {
    try {
      // With a body the API server ignores the query parameters: the grace period goes in the body.
      await this.#core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata!.uid } } });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) this.#log.warn({ err: (err as Error).message }, 'pod delete failed');
    }
  }

  #workerContext(): WorkerContext {
    const agent = this;
    const apiServer = new URL(this.#o.kubeConfig.getCurrentCluster()!.server);
    const port = apiServer.port || '443';
    const baseEnv: Record<string, string> = {
      KUBERNETES_SERVICE_HOST: apiServer.hostname,
      KUBERNETES_SERVICE_PORT: port,
      KUBERNETES_SERVICE_PORT_HTTPS: port,
    };
    for (const name of ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR']) {
      if (process.env[name] !== undefined) baseEnv[name] = process.env[name]!;
    }
    return {
      log: this.#log,
      hostIP: this.hostIP,
      nodeAllocatable: this.#allocatable,
      baseEnv,
      backoff: this.#o.backoff ?? defaultBackoff,
      initialReadinessPollMs: this.#o.initialReadinessPollMs ?? 200,
      configMap: (ns, name) => this.#configMaps.get(name, ns),
      secret: (ns, name) => this.#secrets.get(name, ns),
      claimDirectory: (ns, name) => this.#claimDirectory(ns, name),
      requestToken: (pod, spec) => this.#requestToken(pod, spec),
      async patchStatus(pod, status) {
        const name = pod.metadata!.name!;
        const namespace = pod.metadata!.namespace!;
        try {
          // The UID in the patch is a precondition, as the kubelet's: the last status of a pod
          // deleted and created again under the same name (a roll) must not land on the new one.
          await agent.#core.patchNamespacedPodStatus({ name, namespace, body: { metadata: { uid: pod.metadata!.uid }, status } }, strategicPatch);
        } catch (err) {
          const code = (err as { code?: number }).code;
          if (code !== 409 && code !== 422) throw err;
          const current = await agent.#core.readNamespacedPod({ name, namespace }).catch((e: { code?: number }) => (e.code === 404 ? undefined : Promise.reject(err)));
          if (current?.metadata?.uid !== pod.metadata!.uid) return 'replaced';
          throw err;
        }
      },
      deletePod: (pod) => this.#deleteNow(pod),
      finished: (worker) => {
        if (this.#workers.get(worker.uid) === worker) this.#workers.delete(worker.uid);
        this.pool.release(worker.uid);
      },
    };
  }

  async #requestToken(pod: V1Pod, spec: TokenSpec): Promise<{ token: string; expiresAt: Date }> {
    const result = await this.#core.createNamespacedServiceAccountToken({
      name: pod.spec!.serviceAccountName || 'default',
      namespace: pod.metadata!.namespace!,
      body: {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
        spec: {
          audiences: spec.audience ? [spec.audience] : [],
          expirationSeconds: spec.expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! },
        },
      },
    });
    const expires = result.status?.expirationTimestamp as unknown as Date | string | undefined;
    return { token: result.status?.token ?? '', expiresAt: expires ? new Date(expires) : new Date(Date.now() + spec.expirationSeconds * 1000) };
  }

  /**
   * How long after a ConfigMap or Secret changes its mounted volumes are rewritten (default 0:
   * at once). A kubelet does it on its sync period (69-85 s measured with the default); tests
   * and benchmarks set this to show what does not depend on the files (the node's own watch).
   */
  volumeRefreshDelayMs = 0;

  #objectChanged(kind: 'configMaps' | 'secrets', obj: V1ConfigMap | V1Secret): void {
    const ns = obj.metadata?.namespace;
    const name = obj.metadata?.name ?? '';
    for (const worker of this.#workers.values()) {
      if (worker.namespace !== ns) continue;
      if (!referencedObjects(worker.pod)[kind].has(name)) continue;
      if (this.volumeRefreshDelayMs > 0) setTimeout(() => worker.refreshVolumes(), this.volumeRefreshDelayMs).unref();
      else worker.refreshVolumes();
    }
  }

  /** Pod directories of pods that no longer exist (deleted while the agent was down). */
  async #removeOrphanPodDirs(): Promise<void> {
    const live = new Set(this.#pods.list().map((p) => p.metadata!.uid!));
    for (const entry of await readdir(this.podsDir)) {
      const uid = entry.split('_').at(-1)!;
      if (!live.has(uid)) await rm(join(this.podsDir, entry), { recursive: true, force: true });
    }
  }

  // ---- PersistentVolumeClaims: a hostPath provisioner ----

  #claimDirectory(namespace: string, claimName: string): string | undefined {
    const pvc = this.#claims.get(claimName, namespace);
    if (!pvc?.spec?.volumeName || pvc.status?.phase !== 'Bound') return undefined;
    return this.#volumes.get(pvc.spec.volumeName)?.spec?.hostPath?.path;
  }

  async #claimChanged(pvc: V1PersistentVolumeClaim): Promise<void> {
    if (this.#stopped || pvc.spec?.volumeName || pvc.metadata?.deletionTimestamp || pvc.status?.phase === 'Bound') return;
    if (pvc.status?.phase === 'Bound') return;
    const uid = pvc.metadata!.uid!;
    const name = `pvc-${uid}`;
    if (this.#provisioning.has(uid) || this.#volumes.get(name)) return;
    this.#provisioning.add(uid);
    const path = join(this.volumesDir, name);
    try {
      await mkdir(path, { recursive: true });
      await this.#core.createPersistentVolume({
        body: {
          metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': provisionerName }, labels: { 'mailcluster.io/local': 'true' } },
          spec: {
            capacity: { storage: pvc.spec?.resources?.requests?.storage ?? '1Gi' },
            accessModes: pvc.spec?.accessModes?.length ? pvc.spec.accessModes : ['ReadWriteOnce'],
            persistentVolumeReclaimPolicy: 'Delete',
            storageClassName: pvc.spec?.storageClassName ?? '',
            volumeMode: pvc.spec?.volumeMode ?? 'Filesystem',
            hostPath: { path, type: 'DirectoryOrCreate' },
            claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: pvc.metadata!.namespace!, name: pvc.metadata!.name!, uid },
          },
        },
      });
      this.#log.info({ claim: `${pvc.metadata!.namespace}/${pvc.metadata!.name}`, volume: name }, 'volume provisioned');
    } catch (err) {
      if ((err as { code?: number }).code !== 409) this.#log.warn({ err: (err as Error).message }, 'volume provisioning failed');
    } finally {
      this.#provisioning.delete(uid);
    }
  }

  #ours(pv: V1PersistentVolume): boolean {
    return pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'] === provisionerName;
  }

  async #volumeChanged(pv: V1PersistentVolume): Promise<void> {
    if (this.#stopped || !this.#ours(pv)) return;
    // A pod waiting for this claim can now lay out its volumes (it retries by itself).
    if (pv.status?.phase === 'Released' && pv.spec?.persistentVolumeReclaimPolicy === 'Delete' && !pv.metadata?.deletionTimestamp) {
      try {
        await this.#core.deletePersistentVolume({ name: pv.metadata!.name! });
        this.#log.info({ volume: pv.metadata!.name }, 'released volume deleted');
      } catch (err) {
        if ((err as { code?: number }).code !== 404) this.#log.warn({ err: (err as Error).message }, 'volume delete failed');
      }
    }
  }

  async #volumeDeleted(pv: V1PersistentVolume): Promise<void> {
    if (!this.#ours(pv) || pv.spec?.persistentVolumeReclaimPolicy !== 'Delete') return;
    const path = pv.spec?.hostPath?.path;
    if (path && path.startsWith(this.volumesDir + '/')) await rm(path, { recursive: true, force: true });
  }
}
