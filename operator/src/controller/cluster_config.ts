// Configuration: every node knows every node. One ConfigMap per pod, rewritten when the set
// of peers or the load balancer's address changes; ConfigMaps of indices gone are deleted.
import { indexOf } from '../resources/labels.ts';
import { configMapName, podName } from '../resources/names.ts';
import { buildConfigMap } from '../resources/configmap.ts';
import type { ClusterView, Peer } from '../resources/config.ts';
import { objectContainsDesired } from './compare.ts';
import { LABEL_ROLE } from '../resources/labels.ts';
import type { ObservedPod, ObservedService } from './observed.ts';
import { byName, isTerminating, loadBalancerAddresses, roleOf, type PlanContext, type PodView } from './plan_context.ts';

export interface ConfigResult {
  view: ClusterView;
  peers: Peer[];
  reconfigured: number;
}

export function planConfiguration(ctx: PlanContext, pods: PodView, creating: number[], service: ObservedService | undefined): ConfigResult {
  const { out, observed, cluster, name, spec, desired } = ctx;
  const { live, terminating } = pods;
  const deleted = new Set(out.delete.filter((d) => d.kind === 'Pod').map((d) => d.name));
  // A node leaves the peer lists as soon as it drains (relabeled in this very plan included):
  // a scale-down's new peer list is served at once, not after the drains. Until it is gone its
  // address stays trusted for its hand-off (handingOff).
  const relabeled = new Set(out.patchPods.filter((x) => x.labels?.[LABEL_ROLE] === 'draining').map((x) => x.name));
  const isDraining = (p: ObservedPod) => roleOf(p) === 'draining' || relabeled.has(p.metadata.name);
  const addressed = live.filter(([, p]) => p.status?.podIP && !deleted.has(p.metadata.name));
  const peers: Peer[] = addressed.filter(([, p]) => !isDraining(p)).map(([i, p]) => ({ index: i, ip: p.status!.podIP! }));
  const handingOff: Peer[] = addressed.filter(([, p]) => isDraining(p)).map(([i, p]) => ({ index: i, ip: p.status!.podIP! }));
  const configIndices = new Set<number>([...live.map(([i]) => i).filter((i) => !deleted.has(podName(name, i))), ...creating]);
  const view: ClusterView = {
    name,
    namespace: cluster.metadata.namespace,
    spec,
    peers,
    handingOff,
    indices: [...new Set([...configIndices, ...Array.from({ length: desired }, (_, i) => i)])].sort((a, b) => a - b),
    serviceClusterIP: service?.spec?.clusterIP,
    loadBalancerAddresses: loadBalancerAddresses(service),
  };
  // A pod without an address runs no node yet. Its ConfigMap is made if missing, but not
  // rewritten: the address it gets joins every peer list, so its ConfigMap is rewritten then
  // anyway, with everything that changed meanwhile. While a new cluster's pods get their
  // addresses one by one (and its Service its cluster IP and load balancer address), this saves
  // the rewrites nobody reads — a third of a new cluster's ConfigMap writes (bench:scale).
  const addressless = new Set(live.filter(([, p]) => !p.status?.podIP).map(([i]) => i));
  let reconfigured = 0;
  for (const i of [...configIndices, ...terminating.map((p) => indexOf(p)!)].sort((a, b) => a - b)) {
    const want = buildConfigMap(cluster, i, view);
    const have = byName(observed.configMaps, configMapName(name, i));
    if (!have || !objectContainsDesired(want, have) || Object.keys(have.data ?? {}).length !== 2) {
      if (have && addressless.has(i)) continue;
      if (have) reconfigured++;
      out.apply.push(want);
    }
  }
  // Creating pods need their ConfigMap first; terminating pods keep theirs until gone.
  const keepConfig = new Set([
    ...configIndices, ...terminating.map((p) => indexOf(p)!), ...pods.byIndex.keys(), ...Array.from({ length: desired }, (_, i) => i),
  ].map((i) => configMapName(name, i)));
  for (const cm of observed.configMaps) {
    if (!keepConfig.has(cm.metadata.name) && indexOf(cm) !== undefined && !isTerminating(cm)) {
      out.delete.push({ apiVersion: 'v1', kind: 'ConfigMap', name: cm.metadata.name });
    }
  }
  if (reconfigured > 0) {
    out.events.push({ type: 'Normal', reason: 'Reconfigured', message: `rewrote ${reconfigured} node configurations: ${peers.length} peers` });
  }
  return { view, peers, reconfigured };
}
