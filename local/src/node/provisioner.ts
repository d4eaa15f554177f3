// PersistentVolumes for the real node: for every pending claim of StorageClass
// `mailcluster-local` a `local` PersistentVolume on a directory under <dir>/node/volumes,
// pre-bound by claimRef (kube-controller-manager binds it), with node affinity to the one
// node. `local` rather than `hostPath` because the kubelet applies the pod's fsGroup to a
// local volume (the spool must be writable by the node's uid 10001) and never to a hostPath.
// A released volume is deleted, and its directory with it (reclaim policy Delete).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, StorageV1Api, type KubeConfig, type V1PersistentVolume, type V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { restartingInformer, type Cache } from '../informer.ts';

export const provisionerName = 'mailcluster.io/local-hostpath';
export const storageClassName = 'mailcluster-local';

/** The PersistentVolume for a claim. Pure. */
export function localVolumeFor(pvc: V1PersistentVolumeClaim, path: string, nodeName: string): V1PersistentVolume {
  const uid = pvc.metadata!.uid!;
  return {
    metadata: { name: `pvc-${uid}`, annotations: { 'pv.kubernetes.io/provisioned-by': provisionerName }, labels: { 'mailcluster.io/local': 'true' } },
    spec: {
      capacity: { storage: pvc.spec?.resources?.requests?.storage ?? '1Gi' },
      accessModes: pvc.spec?.accessModes?.length ? pvc.spec.accessModes : ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Delete',
      storageClassName: pvc.spec?.storageClassName ?? storageClassName,
      volumeMode: 'Filesystem',
      local: { path },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [nodeName] }] }] } },
      claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: pvc.metadata!.namespace!, name: pvc.metadata!.name!, uid },
    },
  };
}

export class LocalVolumeProvisioner {
  readonly #core: CoreV1Api;
  readonly #storage: StorageV1Api;
  readonly #log: Logger;
  readonly #busy = new Set<string>();
  #claims!: Cache<V1PersistentVolumeClaim>;
  #volumes!: Cache<V1PersistentVolume>;
  #stopped = false;
  readonly o: { kubeConfig: KubeConfig; volumesDir: string; nodeName: string; log: Logger };

  constructor(o: { kubeConfig: KubeConfig; volumesDir: string; nodeName: string; log: Logger }) {
    this.o = o;
    this.#core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.#storage = o.kubeConfig.makeApiClient(StorageV1Api);
    this.#log = o.log.child({ component: 'local-volume-provisioner' });
  }

  async start(): Promise<void> {
    await mkdir(this.o.volumesDir, { recursive: true });
    try {
      await this.#storage.createStorageClass({
        body: {
          metadata: { name: storageClassName, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
          provisioner: provisionerName, reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate',
        },
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    const stopped = () => this.#stopped;
    this.#claims = restartingInformer<V1PersistentVolumeClaim>(this.o.kubeConfig, '/api/v1/persistentvolumeclaims', () => this.#core.listPersistentVolumeClaimForAllNamespaces(), this.#log, stopped);
    this.#volumes = restartingInformer<V1PersistentVolume>(this.o.kubeConfig, '/api/v1/persistentvolumes', () => this.#core.listPersistentVolume(), this.#log, stopped);
    this.#claims.on('add', (c) => void this.#claim(c));
    this.#claims.on('update', (c) => void this.#claim(c));
    this.#volumes.on('add', (v) => void this.#volume(v));
    this.#volumes.on('update', (v) => void this.#volume(v));
    this.#volumes.on('delete', (v) => void this.#volumeGone(v));
    await this.#volumes.start();
    await this.#claims.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([this.#claims?.stop(), this.#volumes?.stop()].map((p) => p?.catch(() => undefined)));
  }

  async #claim(pvc: V1PersistentVolumeClaim): Promise<void> {
    if (this.#stopped || pvc.spec?.volumeName || pvc.metadata?.deletionTimestamp || pvc.status?.phase === 'Bound') return;
    const wanted = pvc.spec?.storageClassName ?? storageClassName;
    if (wanted !== storageClassName) return;
    const uid = pvc.metadata!.uid!;
    if (this.#busy.has(uid) || this.#volumes.get(`pvc-${uid}`)) return;
    this.#busy.add(uid);
    const path = join(this.o.volumesDir, `pvc-${uid}`);
    try {
      await mkdir(path, { recursive: true });
      await this.#core.createPersistentVolume({ body: localVolumeFor(pvc, path, this.o.nodeName) });
      this.#log.info({ claim: `${pvc.metadata!.namespace}/${pvc.metadata!.name}`, path }, 'volume provisioned');
    } catch (err) {
      if ((err as { code?: number }).code !== 409) this.#log.warn({ err: (err as Error).message }, 'volume provisioning failed');
    } finally {
      this.#busy.delete(uid);
    }
  }

  #ours(pv: V1PersistentVolume): boolean {
    return pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'] === provisionerName;
  }

  async #volume(pv: V1PersistentVolume): Promise<void> {
    if (this.#stopped || !this.#ours(pv)) return;
    if (pv.status?.phase === 'Released' && pv.spec?.persistentVolumeReclaimPolicy === 'Delete' && !pv.metadata?.deletionTimestamp) {
      try {
        await this.#core.deletePersistentVolume({ name: pv.metadata!.name! });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) this.#log.warn({ err: (err as Error).message }, 'volume delete failed');
      }
    }
  }

  async #volumeGone(pv: V1PersistentVolume): Promise<void> {
    if (!this.#ours(pv) || pv.spec?.persistentVolumeReclaimPolicy !== 'Delete') return;
    const path = pv.spec?.local?.path ?? pv.spec?.hostPath?.path;
    if (path && path.startsWith(this.o.volumesDir + '/')) await rm(path, { recursive: true, force: true });
  }
}
