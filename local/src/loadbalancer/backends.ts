// Which addresses a LoadBalancer Service port sends to. Pure.
// For a Service with a selector: its ready pods (see backendsFromPods for why not the
// EndpointSlices). For a Service without one: the ready endpoints of its EndpointSlices, at
// the slice port that carries the Service port's name.
import type { V1EndpointSlice, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';

export interface Backend { address: string; port: number }

export const proxyProtocolAnnotation = 'mailcluster.io/proxy-protocol';

export function backendsFor(servicePort: V1ServicePort, slices: readonly V1EndpointSlice[]): Backend[] {
  const out: Backend[] = [];
  const seen = new Set<string>();
  const protocol = servicePort.protocol ?? 'TCP';
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const port = slice.ports?.find((p) => (p.name ?? '') === (servicePort.name ?? '') && (p.protocol ?? 'TCP') === protocol);
    if (port?.port === undefined || port.port === null) continue;
    for (const endpoint of slice.endpoints ?? []) {
      // API semantics: an unset `ready` means ready.
      if (endpoint.conditions?.ready === false) continue;
      for (const address of endpoint.addresses ?? []) {
        const key = `${address}:${port.port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ address, port: port.port });
      }
    }
  }
  return out.sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
}

export function wantsProxyV2(service: V1Service): boolean {
  const value = service.metadata?.annotations?.[proxyProtocolAnnotation];
  if (value === undefined) return false;
  if (value.toLowerCase() === 'v2') return true;
  throw new Error(`Service ${service.metadata?.namespace}/${service.metadata?.name}: annotation ${proxyProtocolAnnotation} must be "v2" (got ${JSON.stringify(value)})`);
}

/**
 * The ready pods a Service selects, at its targetPort (a named port resolved per pod). Local
 * mode needs this: pod addresses are in 127.0.0.0/8, which the API server's validation refuses
 * in EndpointSlices and Endpoints, so the EndpointSlice controller cannot list them.
 */
export function backendsFromPods(service: V1Service, servicePort: V1ServicePort, pods: readonly V1Pod[]): Backend[] {
  const selector = service.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return [];
  const includeNotReady = service.spec?.publishNotReadyAddresses === true;
  const out: Backend[] = [];
  for (const pod of pods) {
    if (pod.metadata?.namespace !== service.metadata?.namespace || pod.metadata?.deletionTimestamp) continue;
    const labels = pod.metadata?.labels ?? {};
    if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) continue;
    const ip = pod.status?.podIP;
    if (!ip || pod.status?.phase !== 'Running') continue;
    const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    if (!ready && !includeNotReady) continue;
    const port = targetPortOf(servicePort, pod);
    if (port !== undefined) out.push({ address: ip, port });
  }
  return out.sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
}

function targetPortOf(servicePort: V1ServicePort, pod: V1Pod): number | undefined {
  const target = servicePort.targetPort as number | string | undefined;
  if (target === undefined || target === '') return servicePort.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  for (const container of pod.spec?.containers ?? []) {
    const named = container.ports?.find((p) => p.name === target && (p.protocol ?? 'TCP') === (servicePort.protocol ?? 'TCP'));
    if (named) return named.containerPort;
  }
  return undefined;
}
