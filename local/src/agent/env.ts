// A container's environment, computed the way the kubelet does: env and envFrom with
// configMapKeyRef/secretKeyRef, downward API fieldRef/resourceFieldRef and $(VAR) expansion.
// Pure: the ConfigMaps and Secrets it reads come in as lookups.
import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';

export interface EnvSources {
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  secret(namespace: string, name: string): V1Secret | undefined;
  /** Node allocatable, used for resourceFieldRef when the container sets no limit. */
  nodeAllocatable: Record<string, string>;
  podIP: string;
  hostIP: string;
}

/** A referenced ConfigMap/Secret/key is missing (the kubelet's CreateContainerConfigError). */
export class ContainerConfigError extends Error {
  override name = 'ContainerConfigError';
}

export function containerEnv(pod: V1Pod, container: V1Container, sources: EnvSources, base: Record<string, string>): Record<string, string> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const env: Record<string, string> = { ...base };
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef) {
      const cm = sources.configMap(namespace, from.configMapRef.name ?? '');
      if (!cm) {
        if (from.configMapRef.optional) continue;
        throw new ContainerConfigError(`configmap "${from.configMapRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(cm.data ?? {})) env[prefix + k] = v;
    }
    if (from.secretRef) {
      const secret = sources.secret(namespace, from.secretRef.name ?? '');
      if (!secret) {
        if (from.secretRef.optional) continue;
        throw new ContainerConfigError(`secret "${from.secretRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(secret.data ?? {})) env[prefix + k] = Buffer.from(v, 'base64').toString('utf8');
    }
  }
  for (const item of container.env ?? []) {
    if (item.valueFrom === undefined) {
      env[item.name] = expandVars(item.value ?? '', env);
      continue;
    }
    const value = envValueFrom(pod, container, item.name, item.valueFrom, sources);
    if (value !== undefined) env[item.name] = value;
  }
  return env;
}

function envValueFrom(pod: V1Pod, container: V1Container, name: string, from: NonNullable<NonNullable<V1Container['env']>[number]['valueFrom']>, sources: EnvSources): string | undefined {
  const namespace = pod.metadata?.namespace ?? 'default';
  if (from.fieldRef) return podField(pod, from.fieldRef.fieldPath, sources);
  if (from.resourceFieldRef) {
    const target = from.resourceFieldRef.containerName
      ? pod.spec?.containers.find((c) => c.name === from.resourceFieldRef!.containerName) ?? container
      : container;
    return resourceField(target, from.resourceFieldRef.resource, from.resourceFieldRef.divisor, sources.nodeAllocatable);
  }
  if (from.configMapKeyRef) {
    const ref = from.configMapKeyRef;
    const value = sources.configMap(namespace, ref.name ?? '')?.data?.[ref.key];
    if (value === undefined && !ref.optional) throw new ContainerConfigError(`env ${name}: key "${ref.key}" of configmap "${ref.name}" not found`);
    return value;
  }
  if (from.secretKeyRef) {
    const ref = from.secretKeyRef;
    const value = sources.secret(namespace, ref.name ?? '')?.data?.[ref.key];
    if (value === undefined && !ref.optional) throw new ContainerConfigError(`env ${name}: key "${ref.key}" of secret "${ref.name}" not found`);
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  }
  return undefined;
}

/** The downward API's pod fields (env fieldRef and downwardAPI volume items). */
export function podField(pod: V1Pod, fieldPath: string, sources: Pick<EnvSources, 'podIP' | 'hostIP'>): string {
  const meta = pod.metadata ?? {};
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) {
    const map = (keyed[1] === 'labels' ? meta.labels : meta.annotations) ?? {};
    return map[keyed[2]] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name': return meta.name ?? '';
    case 'metadata.namespace': return meta.namespace ?? 'default';
    case 'metadata.uid': return meta.uid ?? '';
    case 'metadata.labels': return formatMap(meta.labels);
    case 'metadata.annotations': return formatMap(meta.annotations);
    case 'spec.nodeName': return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName': return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP': case 'status.hostIPs': return sources.hostIP;
    case 'status.podIP': case 'status.podIPs': return sources.podIP;
    default: throw new ContainerConfigError(`unsupported downward API field ${JSON.stringify(fieldPath)}`);
  }
}

/** `key="value"` lines, sorted, as the kubelet writes labels/annotations files. */
function formatMap(map: Record<string, string> | undefined): string {
  return Object.keys(map ?? {}).sort().map((k) => `${k}=${JSON.stringify(map![k])}`).join('\n');
}

export function resourceField(container: V1Container, resource: string, divisor: string | undefined, nodeAllocatable: Record<string, string>): string {
  const [kind, name] = resource.split('.', 2) as [string, string];
  if ((kind !== 'limits' && kind !== 'requests') || !name) throw new ContainerConfigError(`unsupported resource field ${JSON.stringify(resource)}`);
  const declared = (kind === 'limits' ? container.resources?.limits : container.resources?.requests)?.[name];
  // As the kubelet does: an unset limit reads as the node's allocatable, an unset request as 0.
  const quantity = declared ?? (kind === 'limits' ? nodeAllocatable[name] : undefined) ?? '0';
  const value = parseQuantity(String(quantity));
  const unit = parseQuantity(divisor ? String(divisor) : '1');
  if (unit === 0) throw new ContainerConfigError(`resource field ${resource}: divisor must not be 0`);
  return String(Math.ceil(value / unit - 1e-9));
}

const suffixes: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes resource quantity ("500m", "64Mi", "1e3") as a number of base units. */
export function parseQuantity(quantity: string): number {
  const match = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/.exec(quantity.trim());
  if (!match) throw new ContainerConfigError(`invalid quantity ${JSON.stringify(quantity)}`);
  const number = Number(match[1] + (match[2] ?? ''));
  return number * suffixes[match[3] ?? ''];
}

/** Kubernetes $(VAR) expansion: defined names are replaced, $$ escapes, unknown refs stay. */
export function expandVars(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (whole === '$$') return '$';
    return name !== undefined && Object.hasOwn(vars, name) ? vars[name] : whole;
  });
}
