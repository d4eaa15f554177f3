// Informers on MailClusters and on the operator's own children (label
// app.kubernetes.io/managed-by=mailcluster-operator only). client-node's ListWatch relists on
// 410 Gone and reconnects after a watch timeout, but stops on any other error: here every
// informer is restarted after an error with capped exponential backoff, which also carries
// it through an API server restart.
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type KubernetesObjectApi, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, KIND, PLURAL } from '../api/v1alpha1/types.ts';
import { MANAGED_SELECTOR } from '../resources/labels.ts';
import { ClusterIndex } from './cluster-index.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { KObject } from './observed.ts';

export interface WatchedKind {
  apiVersion: string;
  kind: string;
  plural: string;
  /** Watch only objects labelled as ours. */
  managedOnly: boolean;
}

export const WATCHED_KINDS: WatchedKind[] = [
  { apiVersion: API_VERSION, kind: KIND, plural: PLURAL, managedOnly: false },
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods', managedOnly: true },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', managedOnly: true },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims', managedOnly: true },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', managedOnly: true },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', managedOnly: true },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies', managedOnly: true },
  // Each node's account, Role and RoleBinding: watched, so that one deleted or changed by hand
  // is put back on its event, and nothing is re-applied on a timer (at 1,000 clusters a
  // periodic re-apply was 9,000 writes every resync period).
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', managedOnly: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', plural: 'roles', managedOnly: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', plural: 'rolebindings', managedOnly: true },
  // No Secrets: the operator has no right to read them (it derives what it writes, secret-writer.ts).
];

/**
 * Drops what the operator never reads from an object the informer caches, in place (the
 * cache holds the very object its add/update handlers get), as controller-runtime's cache
 * transform does: managedFields is often the largest part of a pod (one entry per field
 * manager: kubelet status, scheduler, the operator's apply), and 3,000 pods keep it all.
 */
export function trimForCache<T extends { metadata?: { managedFields?: unknown } }>(obj: T): T {
  if (obj.metadata && obj.metadata.managedFields !== undefined) delete obj.metadata.managedFields;
  return obj;
}

type PodShape = {
  metadata?: { managedFields?: unknown };
  spec?: { volumes?: Array<{ name?: string; persistentVolumeClaim?: { claimName?: string } }> } & Record<string, unknown>;
  status?: {
    phase?: string; podIP?: string;
    conditions?: Array<{ type: string; status: string; reason?: string }>;
    containerStatuses?: Array<{ ready?: boolean; restartCount?: number; state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string } } }>;
  } & Record<string, unknown>;
};

/**
 * trimForCache for pods, which are most of the cache at scale (3,000 at 1,000 MailClusters):
 * of the spec only the spool volumes (which claim a pod runs on), of the status only what the
 * planner reads (observed.ts ObservedPod) — not the containers, the projected volumes, the
 * tolerations, the kubelet's container details. Pods are never written from the cache (they are
 * built whole from the MailCluster), so nothing written back misses the fields dropped here.
 */
export function trimPodForCache<T extends object>(obj: T): T {
  const pod = obj as PodShape;
  trimForCache(pod);
  if (pod.spec) {
    pod.spec = {
      volumes: (pod.spec.volumes ?? []).filter((v) => v.persistentVolumeClaim)
        .map((v) => ({ name: v.name, persistentVolumeClaim: { claimName: v.persistentVolumeClaim!.claimName } })),
    };
  }
  const st = pod.status;
  if (st) {
    pod.status = {
      ...(st.phase !== undefined ? { phase: st.phase } : {}),
      ...(st.podIP !== undefined ? { podIP: st.podIP } : {}),
      ...(st.conditions ? { conditions: st.conditions.map((c) => ({ type: c.type, status: c.status, ...(c.reason ? { reason: c.reason } : {}) })) } : {}),
      ...(st.containerStatuses ? {
        containerStatuses: st.containerStatuses.map((c) => ({
          ...(c.ready !== undefined ? { ready: c.ready } : {}),
          ...(c.restartCount !== undefined ? { restartCount: c.restartCount } : {}),
          state: {
            ...(c.state?.waiting ? { waiting: { reason: c.state.waiting.reason, message: c.state.waiting.message } } : {}),
            ...(c.state?.terminated ? { terminated: { reason: c.state.terminated.reason } } : {}),
          },
        })),
      } : {}),
    };
  }
  return obj;
}

/** The REST path of a kind's collection, cluster-wide or in one namespace. */
export function collectionPath(k: WatchedKind, namespace?: string): string {
  const root = k.apiVersion.includes('/') ? `/apis/${k.apiVersion}` : `/api/${k.apiVersion}`;
  return namespace ? `${root}/namespaces/${namespace}/${k.plural}` : `${root}/${k.plural}`;
}

type Handle = { kind: WatchedKind; namespace?: string; informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>; synced: boolean; failures: number; timer?: NodeJS.Timeout };

export interface InformerSetOptions {
  kubeConfig: KubeConfig;
  objects: KubernetesObjectApi;
  /** Watched namespaces; undefined for all. */
  namespaces?: string[];
  metrics: OperatorMetrics;
  log: Logger;
  /** Every add, update and delete the informers deliver (`deleted` for a delete). */
  onChange: (kind: string, obj: KObject, deleted: boolean) => void;
  maxBackoffMs?: number;
}

export class InformerSet {
  private readonly handles: Handle[] = [];
  /** Each kind's objects by the MailCluster they belong to (cluster-index.ts). */
  private readonly indexes = new Map<string, ClusterIndex>();
  private stopped = false;
  private readonly o: InformerSetOptions;

  constructor(o: InformerSetOptions) {
    this.o = o;
    const namespaces: Array<string | undefined> = o.namespaces && o.namespaces.length > 0 ? o.namespaces : [undefined];
    for (const kind of WATCHED_KINDS) {
      const index = new ClusterIndex();
      this.indexes.set(kind.kind, index);
      for (const namespace of namespaces) {
        const selector = kind.managedOnly ? MANAGED_SELECTOR : undefined;
        const list = () => o.objects.list(kind.apiVersion, kind.kind, namespace, undefined, undefined, undefined, undefined, selector);
        const informer = makeInformer(o.kubeConfig, collectionPath(kind, namespace), list, selector);
        const handle: Handle = { kind, ...(namespace ? { namespace } : {}), informer, synced: false, failures: 0 };
        const changed = (obj: KubernetesObject, deleted = false): void => {
          handle.failures = 0;
          o.onChange(kind.kind, obj as unknown as KObject, deleted);
        };
        // trimForCache first: registered before any other handler, it runs as the object is cached.
        const trim = kind.kind === 'Pod' ? trimPodForCache : trimForCache;
        informer.on('add', trim);
        informer.on('update', trim);
        informer.on('add', (obj) => { index.upsert(obj as unknown as KObject); changed(obj); });
        informer.on('update', (obj) => { index.upsert(obj as unknown as KObject); changed(obj); });
        informer.on('delete', (obj) => { index.remove(obj as unknown as KObject); changed(obj, true); });
        informer.on('error', (err: unknown) => this.restart(handle, err));
        this.handles.push(handle);
      }
    }
  }

  private restart(h: Handle, err: unknown): void {
    if (this.stopped) return;
    h.failures++;
    const delay = Math.min(this.o.maxBackoffMs ?? 5000, 250 * 2 ** Math.min(h.failures - 1, 10));
    this.o.metrics.watchRestarts.inc({ resource: h.kind.plural });
    this.o.log.warn({ resource: h.kind.plural, namespace: h.namespace, err: String((err as Error)?.message ?? err), retryInMs: delay }, 'watch failed; restarting');
    if (h.timer) clearTimeout(h.timer);
    h.timer = setTimeout(() => { h.timer = undefined; void this.startOne(h); }, delay);
  }

  private async startOne(h: Handle): Promise<void> {
    if (this.stopped) return;
    try {
      await h.informer.start();
    } catch (err) {
      this.restart(h, err);
      return;
    }
    // start() resolves after the list; a failed list was reported through 'error'.
    if ((h.informer as unknown as { latestResourceVersion(): string }).latestResourceVersion() !== '') h.synced = true;
  }

  async start(): Promise<void> {
    await Promise.all(this.handles.map((h) => this.startOne(h)));
  }

  /** True once every informer has listed at least once. */
  get synced(): boolean {
    for (const h of this.handles) {
      if (!h.synced && (h.informer as unknown as { latestResourceVersion(): string }).latestResourceVersion() !== '') h.synced = true;
    }
    return this.handles.every((h) => h.synced);
  }

  list(kind: string, namespace: string): KObject[] {
    const out: KObject[] = [];
    for (const h of this.handles) {
      if (h.kind.kind !== kind) continue;
      if (h.namespace !== undefined && h.namespace !== namespace) continue;
      out.push(...(h.informer.list(namespace) as unknown as KObject[]));
    }
    return out;
  }

  /** The objects of `kind` belonging to MailCluster `<namespace>/<cluster>`, from the index. */
  children(kind: string, namespace: string, cluster: string): KObject[] {
    return this.indexes.get(kind)?.byCluster(namespace, cluster) ?? [];
  }

  get(kind: string, namespace: string, name: string): KObject | undefined {
    for (const h of this.handles) {
      if (h.kind.kind !== kind) continue;
      if (h.namespace !== undefined && h.namespace !== namespace) continue;
      const found = h.informer.get(name, namespace) as unknown as KObject | undefined;
      if (found) return found;
    }
    return undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const h of this.handles) if (h.timer) clearTimeout(h.timer);
    await Promise.all(this.handles.map((h) => h.informer.stop()));
  }
}
