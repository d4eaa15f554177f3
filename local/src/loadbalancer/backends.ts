// Which addresses a LoadBalancer Service port sends to: the ready endpoints of the Service's
// EndpointSlices, at the slice port that carries the Service port's name (the EndpointSlice
// controller has already resolved named targetPorts per pod). Pure.
import type { V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';

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
