// Local-mode LoadBalancer: every Service of type LoadBalancer gets its own 127.x address from
// a range, reported in status.loadBalancer.ingress[].ip, and a TCP proxy on that address at
// each Service port to its ready pods (or, without a selector, the ready endpoints of its
// EndpointSlices), round-robin. The Service
// annotation `mailcluster.io/proxy-protocol: "v2"` makes the proxy send a PROXY v2 header.
import {
  CoreV1Api, DiscoveryV1Api, KubeConfig, PatchStrategy, setHeaderOptions,
  type KubernetesObject, type V1EndpointSlice, type V1Pod, type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { restartingInformer, type Cache } from '../informer.ts';
import { AddressPool } from './address-pool.ts';
import { backendsFor, backendsFromPods, wantsProxyV2 } from './backends.ts';
import { TcpProxy, type Dialer } from './tcp-proxy.ts';

export interface LoadBalancerOptions {
  kubeConfig: KubeConfig;
  /** CIDR in 127.0.0.0/8 that load balancer addresses come from, e.g. 127.31.0.0/16. */
  range: string;
  log: Logger;
  /** How a proxy reaches a backend; default a plain TCP connection. */
  dial?: Dialer;
}


interface Balancer {
  ip: string;
  /** "<port>/<protocol>" -> proxy */
  proxies: Map<string, TcpProxy>;
  /** The pods ("<namespace>/<name>") its selector matched at its last reconcile: a pod event
   * concerns it when it matches now or did then (a pod relabelled out of it, or deleted). */
  selected: Set<string>;
}

/** Whether a Service selector picks a pod by its labels (an empty or absent selector: none). Pure. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  const l = labels ?? {};
  return Object.entries(selector).every(([k, v]) => l[k] === v);
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class LoadBalancerController {
  readonly pool: AddressPool;
  readonly #o: LoadBalancerOptions;
  readonly #log: Logger;
  readonly #core: CoreV1Api;
  readonly #discovery: DiscoveryV1Api;
  readonly #balancers = new Map<string, Balancer>(); // by "<namespace>/<name>"
  #services!: Cache<V1Service>;
  #slices!: Cache<V1EndpointSlice>;
  #pods!: Cache<V1Pod>;
  #stopped = false;
  #queue: Promise<void> = Promise.resolve();
  /** Keys waiting in #queue: queued once however many events come (its turn reads the latest state). */
  readonly #queued = new Set<string>();

  constructor(options: LoadBalancerOptions) {
    this.#o = options;
    this.pool = new AddressPool(options.range);
    this.#log = options.log.child({ component: 'loadbalancer' });
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#discovery = options.kubeConfig.makeApiClient(DiscoveryV1Api);
  }

  async start(): Promise<void> {
    this.#services = this.#informer<V1Service>('/api/v1/services', () => this.#core.listServiceForAllNamespaces());
    this.#slices = this.#informer<V1EndpointSlice>('/apis/discovery.k8s.io/v1/endpointslices', () => this.#discovery.listEndpointSliceForAllNamespaces());
    const onService = (svc: V1Service) => this.#enqueue(`${svc.metadata!.namespace}/${svc.metadata!.name}`);
    this.#services.on('add', onService);
    this.#services.on('update', onService);
    this.#services.on('delete', onService);
    const onSlice = (slice: V1EndpointSlice) => {
      const svc = slice.metadata?.labels?.['kubernetes.io/service-name'];
      if (svc) this.#enqueue(`${slice.metadata!.namespace}/${svc}`);
    };
    this.#slices.on('add', onSlice);
    this.#slices.on('update', onSlice);
    this.#slices.on('delete', onSlice);
    this.#pods = this.#informer<V1Pod>('/api/v1/pods', () => this.#core.listPodForAllNamespaces());
    // Only the Services the pod concerns: with a thousand pods in a namespace, queueing every
    // Service of it on every pod event made a queue that delayed new Services' addresses by minutes.
    const onPod = (pod: V1Pod) => {
      const podKey = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
      for (const svc of this.#services.list(pod.metadata?.namespace)) {
        if (svc.spec?.type !== 'LoadBalancer' || !svc.spec.selector) continue;
        const key = `${svc.metadata!.namespace}/${svc.metadata!.name}`;
        if (selects(svc.spec.selector, pod.metadata?.labels) || this.#balancers.get(key)?.selected.has(podKey)) this.#enqueue(key);
      }
    };
    this.#pods.on('add', onPod);
    this.#pods.on('update', onPod);
    this.#pods.on('delete', onPod);
    await this.#pods.start();
    await this.#slices.start();
    await this.#services.start();
    await this.#queue;
    this.#log.info({ range: this.#o.range }, 'load balancer started');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([this.#services?.stop(), this.#slices?.stop(), this.#pods?.stop()]);
    await this.#queue;
    for (const balancer of this.#balancers.values()) await Promise.all([...balancer.proxies.values()].map((p) => p.close()));
    this.#balancers.clear();
    this.#log.info('load balancer stopped');
  }

  /** The address a Service got, if any (for status and tests). */
  addressOf(namespace: string, name: string): string | undefined {
    return this.#balancers.get(`${namespace}/${name}`)?.ip;
  }

  #informer<T extends KubernetesObject>(path: string, list: () => Promise<unknown>): Cache<T> {
    return restartingInformer<T>(this.#o.kubeConfig, path, list, this.#log, () => this.#stopped);
  }

  /** Reconciles one Service at a time, in the order first queued; a Service already waiting is not queued again. */
  #enqueue(key: string): void {
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue = this.#queue.then(() => {
      this.#queued.delete(key); // events from here on queue it again
      return this.#reconcile(key);
    }).catch((err) => {
      this.#log.warn({ service: key, err: (err as Error).message }, 'load balancer reconcile failed');
    });
  }

  async #reconcile(key: string): Promise<void> {
    if (this.#stopped) return;
    const [namespace, name] = key.split('/');
    const svc = this.#services.get(name, namespace);
    const existing = this.#balancers.get(key);
    if (!svc || svc.spec?.type !== 'LoadBalancer' || svc.metadata?.deletionTimestamp) {
      if (existing) {
        await Promise.all([...existing.proxies.values()].map((p) => p.close()));
        this.#balancers.delete(key);
        this.pool.release(key);
        this.#log.info({ service: key, ip: existing.ip }, 'load balancer removed');
      }
      return;
    }
    let balancer = existing;
    if (!balancer) {
      // Keep the address the Service already reports (local mode restarted on the same dir) or that it asks for.
      const wanted = svc.spec.loadBalancerIP || svc.status?.loadBalancer?.ingress?.[0]?.ip;
      const ip = wanted && this.pool.reserve(key, wanted) ? wanted : this.pool.allocate(key);
      balancer = { ip, proxies: new Map(), selected: new Set() };
      this.#balancers.set(key, balancer);
    }
    const pods = this.#pods.list(namespace);
    balancer.selected = new Set(pods.filter((p) => selects(svc.spec!.selector, p.metadata?.labels)).map((p) => `${namespace}/${p.metadata?.name}`));
    let proxyV2 = false;
    try { proxyV2 = wantsProxyV2(svc); } catch (err) { this.#log.warn({ service: key, err: (err as Error).message }, 'bad annotation, no PROXY header'); }
    const slices = this.#slices.list(namespace).filter((s) => s.metadata?.labels?.['kubernetes.io/service-name'] === name);
    const wantedPorts = new Set<string>();
    for (const port of svc.spec.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue; // UDP/SCTP are not proxied in local mode
      const portKey = `${port.port}/TCP`;
      wantedPorts.add(portKey);
      let proxy = balancer.proxies.get(portKey);
      if (!proxy) {
        proxy = new TcpProxy(balancer.ip, port.port, this.#log.child({ service: key, port: port.port }), this.#o.dial);
        try {
          await proxy.listen();
        } catch (err) {
          this.#log.warn({ service: key, ip: balancer.ip, port: port.port, err: (err as Error).message }, 'cannot listen');
          continue;
        }
        balancer.proxies.set(portKey, proxy);
        this.#log.info({ service: key, ip: balancer.ip, port: port.port }, 'load balancer listening');
      }
      proxy.backends = svc.spec.selector && Object.keys(svc.spec.selector).length ? backendsFromPods(svc, port, pods) : backendsFor(port, slices);
      proxy.proxyV2 = proxyV2;
      proxy.preserveSource = svc.spec.externalTrafficPolicy === 'Local';
    }
    for (const [portKey, proxy] of balancer.proxies) {
      if (!wantedPorts.has(portKey)) { await proxy.close(); balancer.proxies.delete(portKey); }
    }
    const ingress = svc.status?.loadBalancer?.ingress ?? [];
    if (ingress.length !== 1 || ingress[0].ip !== balancer.ip) {
      await this.#core.patchNamespacedServiceStatus({
        name, namespace,
        body: { status: { loadBalancer: { ingress: [{ ip: balancer.ip, ipMode: 'VIP' }] } } },
      }, mergePatch);
    }
  }
}
