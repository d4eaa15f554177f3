// What each pod volume holds. Pure: ConfigMaps, Secrets and service-account tokens come in
// as lookups; the payload is then written by atomic-writer.ts, emptyDirs and PVCs are
// directories (see pod-worker.ts).
import type { V1ConfigMap, V1KeyToPath, V1Pod, V1Secret, V1Volume } from '@kubernetes/client-node';
import { ContainerConfigError, podField, resourceField } from './env.ts';
import type { Payload } from './atomic-writer.ts';

export interface VolumeSources {
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  secret(namespace: string, name: string): V1Secret | undefined;
  /** The token for a projected serviceAccountToken source, keyed by tokenKey(). */
  token(key: string): string | undefined;
  nodeAllocatable: Record<string, string>;
  podIP: string;
  hostIP: string;
}

export type VolumePlan =
  | { kind: 'files'; payload: Payload }
  | { kind: 'emptyDir' }
  | { kind: 'claim'; claimName: string; readOnly: boolean }
  | { kind: 'hostPath'; path: string };

const defaultMode = 0o644;

export interface TokenSpec { key: string; audience: string | undefined; expirationSeconds: number }

export function tokenKey(volumeName: string, path: string): string {
  return `${volumeName}/${path}`;
}

/** The service-account tokens a pod's volumes need (TokenRequest API, refreshed by the agent). */
export function tokenSpecs(pod: V1Pod): TokenSpec[] {
  const out: TokenSpec[] = [];
  for (const volume of pod.spec?.volumes ?? []) {
    for (const source of volume.projected?.sources ?? []) {
      const sat = source.serviceAccountToken;
      if (sat) out.push({ key: tokenKey(volume.name, sat.path), audience: sat.audience, expirationSeconds: sat.expirationSeconds ?? 3600 });
    }
  }
  return out;
}

/** Names of the ConfigMaps and Secrets a pod reads (volumes and env), to know whom to refresh. */
export function referencedObjects(pod: V1Pod): { configMaps: Set<string>; secrets: Set<string> } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const v of pod.spec?.volumes ?? []) {
    if (v.configMap?.name) configMaps.add(v.configMap.name);
    if (v.secret?.secretName) secrets.add(v.secret.secretName);
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap?.name) configMaps.add(s.configMap.name);
      if (s.secret?.name) secrets.add(s.secret.name);
    }
  }
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef?.name) configMaps.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
    }
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef?.name) configMaps.add(f.configMapRef.name);
      if (f.secretRef?.name) secrets.add(f.secretRef.name);
    }
  }
  return { configMaps, secrets };
}

export function planVolume(pod: V1Pod, volume: V1Volume, sources: VolumeSources): VolumePlan {
  const namespace = pod.metadata?.namespace ?? 'default';
  if (volume.emptyDir) return { kind: 'emptyDir' };
  if (volume.persistentVolumeClaim) return { kind: 'claim', claimName: volume.persistentVolumeClaim.claimName, readOnly: !!volume.persistentVolumeClaim.readOnly };
  if (volume.hostPath) return { kind: 'hostPath', path: volume.hostPath.path };
  const payload: Payload = new Map();
  if (volume.configMap) {
    const cm = sources.configMap(namespace, volume.configMap.name ?? '');
    if (!cm && !volume.configMap.optional) throw new ContainerConfigError(`configmap "${volume.configMap.name}" not found`);
    addKeys(payload, configMapData(cm), volume.configMap.items, volume.configMap.defaultMode ?? defaultMode, !!volume.configMap.optional, `configmap "${volume.configMap.name}"`);
    return { kind: 'files', payload };
  }
  if (volume.secret) {
    const secret = sources.secret(namespace, volume.secret.secretName ?? '');
    if (!secret && !volume.secret.optional) throw new ContainerConfigError(`secret "${volume.secret.secretName}" not found`);
    addKeys(payload, secretData(secret), volume.secret.items, volume.secret.defaultMode ?? defaultMode, !!volume.secret.optional, `secret "${volume.secret.secretName}"`);
    return { kind: 'files', payload };
  }
  if (volume.downwardAPI) {
    addDownward(payload, pod, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? defaultMode, sources);
    return { kind: 'files', payload };
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? defaultMode;
    for (const source of volume.projected.sources ?? []) {
      if (source.configMap) {
        const cm = sources.configMap(namespace, source.configMap.name ?? '');
        if (!cm && !source.configMap.optional) throw new ContainerConfigError(`configmap "${source.configMap.name}" not found`);
        addKeys(payload, configMapData(cm), source.configMap.items, mode, !!source.configMap.optional, `configmap "${source.configMap.name}"`);
      } else if (source.secret) {
        const secret = sources.secret(namespace, source.secret.name ?? '');
        if (!secret && !source.secret.optional) throw new ContainerConfigError(`secret "${source.secret.name}" not found`);
        addKeys(payload, secretData(secret), source.secret.items, mode, !!source.secret.optional, `secret "${source.secret.name}"`);
      } else if (source.downwardAPI) {
        addDownward(payload, pod, source.downwardAPI.items ?? [], mode, sources);
      } else if (source.serviceAccountToken) {
        const token = sources.token(tokenKey(volume.name, source.serviceAccountToken.path));
        if (token === undefined) throw new ContainerConfigError(`service account token for volume ${volume.name} not issued yet`);
        payload.set(source.serviceAccountToken.path, { content: Buffer.from(token), mode });
      }
    }
    return { kind: 'files', payload };
  }
  throw new ContainerConfigError(`volume ${volume.name}: this volume type is not supported in local mode`);
}

function configMapData(cm: V1ConfigMap | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(cm?.data ?? {})) out.set(k, Buffer.from(v, 'utf8'));
  for (const [k, v] of Object.entries(cm?.binaryData ?? {})) out.set(k, Buffer.from(v, 'base64'));
  return out;
}

function secretData(secret: V1Secret | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(secret?.data ?? {})) out.set(k, Buffer.from(v, 'base64'));
  for (const [k, v] of Object.entries(secret?.stringData ?? {})) out.set(k, Buffer.from(v, 'utf8'));
  return out;
}

function addKeys(payload: Payload, data: Map<string, Buffer>, items: V1KeyToPath[] | undefined, mode: number, optional: boolean, what: string): void {
  if (!items?.length) {
    for (const [k, v] of data) payload.set(k, { content: v, mode });
    return;
  }
  for (const item of items) {
    const value = data.get(item.key);
    if (value === undefined) {
      if (optional) continue;
      throw new ContainerConfigError(`key "${item.key}" of ${what} not found`);
    }
    payload.set(item.path, { content: value, mode: item.mode ?? mode });
  }
}

function addDownward(payload: Payload, pod: V1Pod, items: NonNullable<NonNullable<V1Volume['downwardAPI']>['items']>, mode: number, sources: VolumeSources): void {
  for (const item of items) {
    let value: string;
    if (item.fieldRef) value = podField(pod, item.fieldRef.fieldPath, sources);
    else if (item.resourceFieldRef) {
      const container = pod.spec?.containers.find((c) => c.name === item.resourceFieldRef!.containerName) ?? pod.spec!.containers[0];
      value = resourceField(container, item.resourceFieldRef.resource, item.resourceFieldRef.divisor, sources.nodeAllocatable);
    } else continue;
    payload.set(item.path, { content: Buffer.from(value), mode: item.mode ?? mode });
  }
}
