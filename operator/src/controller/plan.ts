// The reconcile planner: observed state in, desired writes and actions out. Pure — the
// controller does the I/O. Level-based: everything it needs to continue a scale-down or a
// roll is on the objects themselves (role label, drain annotations), so it picks up where it
// left off after an operator restart.
import { withDefaults, type DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import { parseDuration } from '../api/v1alpha1/duration.ts';
import type { MailCluster, MailClusterStatus } from '../api/v1alpha1/types.ts';
import { canonicalJson } from '../resources/hash.ts';
import {
  ANNOTATION_DRAIN_REASON, ANNOTATION_DRAIN_REQUESTED, ANNOTATION_DRAINING_SINCE, ANNOTATION_TEMPLATE_HASH,
  indexOf, LABEL_ROLE, podSelector, selectorString,
} from '../resources/labels.ts';
import { ADMIN_PORT, configMapName, mailqSecretName, pdbName, peersServiceName, podName, serviceName, spoolClaimName } from '../resources/names.ts';
import { buildConfigMap } from '../resources/configmap.ts';
import { clusterSelfAddresses, peerList, type ClusterView, type Peer } from '../resources/config.ts';
import { buildPod, podTemplateHash } from '../resources/pod.ts';
import { buildSpoolClaim } from '../resources/pvc.ts';
import { buildMailqSecret, passwordOf } from '../resources/secret.ts';
import { buildService } from '../resources/service.ts';
import { buildPeersService } from '../resources/peers-service.ts';
import { buildPodDisruptionBudget } from '../resources/pdb.ts';
import { objectContainsDesired } from './compare.ts';
import { computeConditions, type ClusterFacts } from './conditions/index.ts';
import type { KObject, ObservedPod, ObservedService, ObservedState } from './observed.ts';

/** A merge patch of a pod's labels and annotations (role changes, drain markers). */
export interface PodPatch {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface DrainRequest {
  pod: string;
  url: string;
}

export interface DeleteRequest {
  apiVersion: string;
  kind: string;
  name: string;
}

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface Plan {
  /** Server-side applies; the controller applies pods after everything else. */
  apply: KObject[];
  patchPods: PodPatch[];
  drain: DrainRequest[];
  delete: DeleteRequest[];
  events: PlannedEvent[];
  /** The new status, only when it differs from the current one. */
  status?: MailClusterStatus;
  /** Come back after this long even without a watch event (drain polling, waiting). */
  requeueAfterMs?: number;
}

/** How often a draining node is asked again to drain (a node restart forgets it). */
export const DRAIN_REREQUEST_MS = 30_000;
/** How often a draining node's queue is looked at. */
export const POLL_MS = 500;
// The TLS Secret is not ours, so no watch tells when it appears: look again (a read, no write).
const TLS_RECHECK_MS = 5_000;

const isTerminating = (o: KObject): boolean => Boolean(o.metadata.deletionTimestamp);
const roleOf = (p: ObservedPod): string => p.metadata.labels?.[LABEL_ROLE] ?? 'serving';
export const isPodReady = (p: ObservedPod): boolean => Boolean(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

function failureOf(p: ObservedPod): string | undefined {
  if (p.status?.phase === 'Failed') return 'Failed';
  for (const cs of p.status?.containerStatuses ?? []) {
    const reason = cs.state?.waiting?.reason;
    if (reason && /BackOff|ErrImage|Error|Invalid/.test(reason)) return reason;
  }
  return undefined;
}

function loadBalancerAddresses(service: ObservedService | undefined): string[] {
  return (service?.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? i.hostname ?? '').filter((a) => a.length > 0);
}

function byName<T extends KObject>(objects: T[], name: string): T | undefined {
  return objects.find((o) => o.metadata.name === name);
}

function sinceMs(value: string | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : now.getTime() - t;
}

const iso = (d: Date): string => d.toISOString();
const adminUrl = (ip: string, path: string): string => `http://${ip.includes(':') ? `[${ip}]` : ip}:${ADMIN_PORT}${path}`;

export function plan(observed: ObservedState): Plan {
  const out: Plan = { apply: [], patchPods: [], drain: [], delete: [], events: [] };
  const { cluster, now } = observed;
  if (cluster.metadata.deletionTimestamp) return out; // garbage collection takes the children
  const name = cluster.metadata.name;
  const namespace = cluster.metadata.namespace;
  const spec: DefaultedSpec = withDefaults(cluster.spec);
  const desired = spec.replicas;
  const drainTimeoutMs = parseDuration(spec.drainTimeout);
  const requeue = (ms: number): void => { out.requeueAfterMs = Math.min(out.requeueAfterMs ?? ms, ms); };
  const applyIfChanged = (want: KObject, have: KObject | undefined): void => {
    if (!have || !objectContainsDesired(want, have)) out.apply.push(want);
  };

  // --- cluster-wide children -------------------------------------------------------------
  const secret = byName(observed.secrets, mailqSecretName(name));
  const password = passwordOf(secret);
  if (!password) out.apply.push(buildMailqSecret(cluster, observed.newPassword));
  else applyIfChanged(buildMailqSecret(cluster, password), secret);

  const service = byName(observed.services, serviceName(name));
  applyIfChanged(buildService(cluster, spec), service);
  applyIfChanged(buildPeersService(cluster), byName(observed.services, peersServiceName(name)));
  applyIfChanged(buildPodDisruptionBudget(cluster), byName(observed.podDisruptionBudgets, pdbName(name)));

  // --- pods ------------------------------------------------------------------------------
  const podsByIndex = new Map<number, ObservedPod>();
  for (const p of observed.pods) {
    const i = indexOf(p);
    if (i === undefined || p.metadata.name !== podName(name, i)) continue; // not one of ours
    podsByIndex.set(i, p);
  }
  const live = [...podsByIndex.entries()].filter(([, p]) => !isTerminating(p));
  const terminating = [...podsByIndex.values()].filter(isTerminating);
  const tlsProblem = spec.tls && observed.tlsSecret && observed.tlsSecret !== 'ok'
    ? { reason: observed.tlsSecret === 'missing' ? 'TLSSecretMissing' as const : 'TLSSecretInvalid' as const, secret: spec.tls.secretName }
    : undefined;
  if (tlsProblem) {
    requeue(TLS_RECHECK_MS);
    out.events.push({ type: 'Warning', reason: tlsProblem.reason, message: `TLS Secret ${tlsProblem.secret} is ${tlsProblem.reason === 'TLSSecretMissing' ? 'missing' : 'invalid'}: no new nodes are started` });
  }

  const claimNames = new Set(observed.claims.filter((c) => !isTerminating(c)).map((c) => c.metadata.name));
  const claimsGoing = new Set(observed.claims.filter(isTerminating).map((c) => c.metadata.name));
  const missing: number[] = [];
  const creating: number[] = [];
  for (let i = 0; i < desired; i++) {
    if (podsByIndex.has(i)) continue; // a terminating pod at i is waited for, not replaced
    missing.push(i);
    if (tlsProblem) continue;
    // A spool claim still being deleted (scaled down, then up again) is waited for too.
    if (claimsGoing.has(spoolClaimName(name, i))) { requeue(POLL_MS); continue; }
    creating.push(i);
    if (!claimNames.has(spoolClaimName(name, i))) out.apply.push(buildSpoolClaim(cluster, spec, i));
    out.apply.push(buildPod(cluster, spec, i));
  }
  if (creating.length > 0) {
    out.events.push({ type: 'Normal', reason: 'CreatingNodes', message: `creating ${creating.map((i) => podName(name, i)).join(', ')} (${desired} replicas)` });
  }
  // A spool claim above the desired count with no pod means its pod went away undrained
  // (deleted by hand mid scale-down): bring it back as draining, so its mail is handed off.
  for (const claim of observed.claims) {
    const i = indexOf(claim);
    if (i === undefined || i < desired || podsByIndex.has(i) || isTerminating(claim) || tlsProblem) continue;
    if (claim.metadata.name !== spoolClaimName(name, i)) continue;
    out.apply.push(buildPod(cluster, spec, i, 'draining'));
    creating.push(i);
    out.events.push({ type: 'Normal', reason: 'Recovering', message: `${podName(name, i)} went away before it was drained; starting it again to drain its spool` });
  }

  // --- draining: scale-down and rolling ----------------------------------------------------
  const draining = live.filter(([, p]) => roleOf(p) === 'draining');
  const serving = live.filter(([, p]) => roleOf(p) !== 'draining');
  const excess = serving.filter(([i]) => i >= desired).sort((a, b) => b[0] - a[0]);
  const outdated = serving
    .filter(([i, p]) => i < desired && p.metadata.annotations?.[ANNOTATION_TEMPLATE_HASH] !== podTemplateHash(cluster, spec, i))
    .sort((a, b) => b[0] - a[0]);
  const drainingFacts: ClusterFacts['draining'] = [];

  const startDrain = (i: number, p: ObservedPod, reason: 'scale-down' | 'roll'): void => {
    out.patchPods.push({
      name: p.metadata.name,
      labels: { [LABEL_ROLE]: 'draining' },
      annotations: { [ANNOTATION_DRAINING_SINCE]: iso(now), [ANNOTATION_DRAIN_REASON]: reason },
    });
    out.events.push({ type: 'Normal', reason: 'Draining', message: `draining ${p.metadata.name} (${reason === 'roll' ? 'rolling to the new pod template' : `scaling down to ${desired}`})` });
    drainingFacts.push({ pod: p.metadata.name, reason, stalled: false });
    // Right after the relabel (the controller patches first): it has left the Service.
    const ip = p.status?.podIP;
    if (ip) out.drain.push({ pod: p.metadata.name, url: adminUrl(ip, '/drain') });
    requeue(POLL_MS);
  };

  // Finish what is draining before starting anything else: one node at a time.
  for (const [i, p] of draining) {
    const pod = p.metadata.name;
    const reason = p.metadata.annotations?.[ANNOTATION_DRAIN_REASON] ?? (i >= desired ? 'scale-down' : 'roll');
    const elapsed = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAINING_SINCE], now) ?? 0;
    const stalled = elapsed > drainTimeoutMs;
    drainingFacts.push({ pod, reason, stalled: stalled && i >= desired });
    requeue(POLL_MS);
    const ip = p.status?.podIP;
    const keepSpool = i < desired; // a rolled pod comes back at the same index, with its spool
    if (!ip) {
      // Never started (no address): it cannot hold mail that it accepted.
      if (!p.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0 || c.ready)) {
        deletePod(out, name, i, keepSpool);
        out.events.push({ type: 'Normal', reason: 'Drained', message: `${pod} never started; deleting it` });
      }
      continue;
    }
    const requestedAgo = sinceMs(p.metadata.annotations?.[ANNOTATION_DRAIN_REQUESTED], now);
    const probe = observed.queues[pod];
    if (requestedAgo !== undefined && probe && 'total' in probe && probe.total === 0) {
      deletePod(out, name, i, keepSpool);
      out.events.push({ type: 'Normal', reason: 'Drained', message: `${pod} has an empty queue; deleting it${keepSpool ? '' : ' and its spool'}` });
      continue;
    }
    if (stalled && keepSpool) {
      // A rolled node keeps its spool and the new pod at this index delivers it: go on.
      deletePod(out, name, i, true);
      out.events.push({ type: 'Warning', reason: 'DrainTimeout', message: `${pod} did not empty its queue within ${spec.drainTimeout}; replacing it, its spool stays with the new pod` });
      continue;
    }
    const forgot = probe !== undefined && 'total' in probe && probe.draining === false; // restarted since
    if (requestedAgo === undefined || requestedAgo >= DRAIN_REREQUEST_MS || forgot) {
      out.drain.push({ pod, url: adminUrl(ip, '/drain') });
    }
    if (stalled) {
      const held = probe && 'total' in probe ? `${probe.total} messages` : `queue unknown (${probe && 'error' in probe ? probe.error : 'not asked yet'})`;
      out.events.push({ type: 'Warning', reason: 'DrainStalled', message: `${pod} still holds mail after ${spec.drainTimeout}: ${held}; keeping it` });
    }
  }

  const allOthersReady = (except: number): boolean =>
    serving.filter(([i]) => i !== except && i < desired).every(([, p]) => isPodReady(p)) && missing.length === 0;
  if (draining.length === 0 && terminating.length === 0) {
    if (excess.length > 0) {
      const [i, p] = excess[0];
      if (!p.status?.podIP) { deletePod(out, name, i, false); requeue(POLL_MS); }
      else startDrain(i, p, 'scale-down');
    } else if (outdated.length > 0 && creating.length === 0) {
      // Roll one pod at a time, and only while the rest of the cluster serves; a pod that is
      // not ready itself (a bad image) may be replaced at once.
      const notReady = outdated.find(([, p]) => !isPodReady(p));
      const [i, p] = notReady ?? outdated[0];
      if (allOthersReady(i)) {
        // A pod that does not serve has nothing in flight: replace it (its spool stays).
        if (!isPodReady(p)) {
          deletePod(out, name, i, true);
          out.events.push({ type: 'Normal', reason: 'Rolling', message: `replacing ${p.metadata.name} (not ready) with the new pod template` });
          requeue(POLL_MS);
        } else {
          out.events.push({ type: 'Normal', reason: 'Rolling', message: `rolling ${p.metadata.name} to the new pod template` });
          startDrain(i, p, 'roll');
        }
      }
    }
  }
  if (terminating.length > 0) requeue(POLL_MS * 2);

  // --- configuration: every node knows every node -----------------------------------------
  const deleted = new Set(out.delete.filter((d) => d.kind === 'Pod').map((d) => d.name));
  const peers: Peer[] = live
    .filter(([, p]) => p.status?.podIP && !deleted.has(p.metadata.name))
    .map(([i, p]) => ({ index: i, ip: p.status!.podIP! }));
  const configIndices = new Set<number>([...live.map(([i]) => i).filter((i) => !deleted.has(podName(name, i))), ...creating]);
  const view: ClusterView = {
    name,
    namespace,
    spec,
    peers,
    indices: [...new Set([...configIndices, ...Array.from({ length: desired }, (_, i) => i)])].sort((a, b) => a - b),
    serviceClusterIP: service?.spec?.clusterIP,
    loadBalancerAddresses: loadBalancerAddresses(service),
  };
  let reconfigured = 0;
  for (const i of [...configIndices, ...terminating.map((p) => indexOf(p)!)].sort((a, b) => a - b)) {
    const want = buildConfigMap(cluster, i, view);
    const have = byName(observed.configMaps, configMapName(name, i));
    if (!have || !objectContainsDesired(want, have) || Object.keys(have.data ?? {}).length !== 2) {
      if (have) reconfigured++;
      out.apply.push(want);
    }
  }
  // Creating pods need their ConfigMap first; terminating pods keep theirs until gone.
  const keepConfig = new Set([
    ...configIndices, ...terminating.map((p) => indexOf(p)!), ...podsByIndex.keys(), ...Array.from({ length: desired }, (_, i) => i),
  ].map((i) => configMapName(name, i)));
  for (const cm of observed.configMaps) {
    if (!keepConfig.has(cm.metadata.name) && indexOf(cm) !== undefined && !isTerminating(cm)) {
      out.delete.push({ apiVersion: 'v1', kind: 'ConfigMap', name: cm.metadata.name });
    }
  }
  if (reconfigured > 0) {
    out.events.push({ type: 'Normal', reason: 'Reconfigured', message: `rewrote ${reconfigured} node configurations: ${peers.length} peers` });
  }

  // --- status ------------------------------------------------------------------------------
  const failing = live.map(([, p]) => ({ pod: p.metadata.name, reason: failureOf(p) }))
    .filter((x): x is { pod: string; reason: string } => x.reason !== undefined);
  const facts: ClusterFacts = {
    desired,
    readyServing: serving.filter(([i, p]) => i < desired && isPodReady(p)).length,
    missing,
    draining: drainingFacts,
    excess: excess.map(([, p]) => p.metadata.name).filter((n) => !drainingFacts.some((d) => d.pod === n)),
    outdated: outdated.map(([, p]) => p.metadata.name).filter((n) => !drainingFacts.some((d) => d.pod === n)),
    failing,
    ...(tlsProblem ? { tlsProblem } : {}),
    reconfigured,
    ...(observed.lastError ? { lastError: observed.lastError } : {}),
  };
  const generation = cluster.metadata.generation ?? 0;
  const address = loadBalancerAddresses(service)[0] ?? (spec.service.type !== 'LoadBalancer' ? service?.spec?.clusterIP : undefined);
  const status: MailClusterStatus = {
    observedGeneration: generation,
    replicas: live.length,
    readyReplicas: facts.readyServing,
    selector: selectorString(podSelector(name)),
    ...(address ? { address } : {}),
    peers: peerList(view),
    selfAddresses: clusterSelfAddresses(view),
    conditions: computeConditions(facts, cluster.status?.conditions, generation, now),
  };
  if (canonicalJson(status) !== canonicalJson(cluster.status ?? {})) out.status = status;
  return out;
}

function deletePod(out: Plan, cluster: string, index: number, keepSpool: boolean): void {
  // The claim first: its in-use protection holds it until the pod is gone, and an operator
  // restart in between finds a claim being deleted rather than an undrained one.
  if (!keepSpool) out.delete.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: spoolClaimName(cluster, index) });
  out.delete.push({ apiVersion: 'v1', kind: 'Pod', name: podName(cluster, index) });
}

export type { MailCluster };
