// Test data for the pure planner and builders: objects shaped as the API server returns them,
// built from the operator's own builders plus the status a running pod reports.
import type { MailCluster, MailClusterSpec } from '../../../operator/src/api/v1alpha1/types.ts';
import type { KObject, ObservedPod, ObservedState } from '../../../operator/src/controller/observed.ts';
import { plan, type Plan } from '../../../operator/src/controller/plan.ts';
import { restartsOf } from '../../../operator/src/controller/claims.ts';
import { clusterCredentials } from '../../../operator/src/resources/credentials.ts';
import type { AdminAccess } from '../../../operator/src/resources/network-policy.ts';

/** A fixed master key for the pure tests (credentials are derived from it). */
export const MASTER_KEY = Buffer.alloc(32, 7);
export const ADMIN_ACCESS: AdminAccess = { operatorNamespace: 'mail-system', operatorPodLabels: { 'app.kubernetes.io/name': 'mailcluster-operator' } };

export const NOW = new Date('2026-11-29T12:00:00Z');

export function mailCluster(spec: Partial<MailClusterSpec> = {}, name = 'mc'): MailCluster {
  return {
    apiVersion: 'mailcluster.io/v1alpha1',
    kind: 'MailCluster',
    metadata: { name, namespace: 'mail', uid: 'uid-1234', generation: 1 },
    spec: { hostname: 'smtp.isp.net', relayDomains: ['customer.example'], ...spec },
  };
}

/** A small in-memory view of the objects the planner sees, updated from its plans. */
export class World {
  objects = new Map<string, KObject>();
  cluster: MailCluster;
  queues: ObservedState['queues'] = {};
  tlsSecret: ObservedState['tlsSecret'];
  now = NOW;
  private uids = 0;

  constructor(cluster: MailCluster) { this.cluster = cluster; }

  private key(kind: string, name: string): string { return `${kind}/${name}`; }

  list(kind: string): KObject[] {
    return [...this.objects.values()].filter((o) => o.kind === kind).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  get(kind: string, name: string): KObject | undefined { return this.objects.get(this.key(kind, name)); }

  observed(): ObservedState {
    return {
      cluster: this.cluster,
      pods: this.list('Pod') as ObservedPod[],
      configMaps: this.list('ConfigMap'),
      claims: this.list('PersistentVolumeClaim'),
      services: this.list('Service'),
      podDisruptionBudgets: this.list('PodDisruptionBudget'),
      networkPolicies: this.list('NetworkPolicy'),
      nodeAccess: { ServiceAccount: this.list('ServiceAccount'), Role: this.list('Role'), RoleBinding: this.list('RoleBinding') },
      ...(this.tlsSecret ? { tlsSecret: this.tlsSecret } : {}),
      queues: this.queues,
      credentials: clusterCredentials(MASTER_KEY, { namespace: this.cluster.metadata.namespace, name: this.cluster.metadata.name, uid: this.cluster.metadata.uid! }),
      adminAccess: ADMIN_ACCESS,
      now: this.now,
    };
  }

  /** Applies a plan the way the API server would (without running anything). */
  apply(plan: Plan): void {
    // Secrets as the controller writes them (whole); the planner never sees them back.
    for (const obj of plan.secrets) this.objects.set(this.key(obj.kind!, obj.metadata.name), structuredClone(obj));
    for (const obj of plan.apply) {
      const copy = structuredClone(obj);
      const before = this.get(copy.kind!, copy.metadata.name);
      if (before && 'status' in before) copy.status = before.status;
      // The API server gives every new object a UID and keeps it across updates.
      copy.metadata.uid = before?.metadata.uid ?? `uid-${copy.metadata.name}-${++this.uids}`;
      if (copy.kind === 'Service' && !(copy.spec as any).clusterIP) (copy.spec as any).clusterIP = (before?.spec as any)?.clusterIP ?? '10.96.0.10';
      this.objects.set(this.key(copy.kind!, copy.metadata.name), copy);
    }
    for (const patch of plan.patchPods) {
      const pod = this.get('Pod', patch.name)!;
      pod.metadata.labels = { ...pod.metadata.labels, ...patch.labels };
      pod.metadata.annotations = { ...pod.metadata.annotations, ...patch.annotations };
    }
    for (const d of plan.drain) {
      const pod = this.get('Pod', d.pod)!;
      pod.metadata.annotations = { ...pod.metadata.annotations, 'mailcluster.io/drain-requested': this.now.toISOString() };
    }
    for (const d of plan.delete) this.objects.delete(this.key(d.kind, d.name));
    if (plan.status) this.cluster = { ...this.cluster, status: plan.status };
  }

  /** The pod runs with an address (and passes its readiness probe unless told otherwise). */
  run(name: string, ip: string, ready = true): void {
    const pod = this.get('Pod', name) as ObservedPod;
    pod.status = {
      phase: 'Running',
      podIP: ip,
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: [{ ready, restartCount: 0, state: {} }],
    };
  }

  /** What GET /queue of pod `name` answers (contract 2), recorded with that pod's UID. */
  report(name: string, total: number, state: { draining?: boolean; drained?: boolean } = {}): void {
    const pod = this.get('Pod', name) as ObservedPod | undefined;
    const uid = pod?.metadata.uid;
    const draining = state.draining ?? true;
    this.queues[name] = {
      total, draining, drained: state.drained ?? (draining && total === 0), ...(uid ? { uid } : {}),
      askedAt: this.now.getTime(), restarts: pod ? restartsOf(pod) : 0,
    };
  }

  setLoadBalancer(ip: string): void {
    const svc = this.get('Service', 'mc')!;
    svc.status = { loadBalancer: { ingress: [{ ip }] } };
  }

  /** Runs every pod that has no address yet, on 127.40.0.<10+index>. */
  runAll(): void {
    for (const p of this.list('Pod') as ObservedPod[]) {
      if (!p.status?.podIP) this.run(p.metadata.name, `127.40.0.${10 + Number(p.metadata.labels!['mailcluster.io/index'])}`);
    }
  }
}

export function isEmptyPlan(p: Plan): boolean {
  return p.apply.length === 0 && p.patchPods.length === 0 && p.drain.length === 0 && p.delete.length === 0 && p.status === undefined;
}

export function names(objs: KObject[], kind?: string): string[] {
  return objs.filter((o) => kind === undefined || o.kind === kind).map((o) => o.metadata.name).sort();
}

/** A cluster of `replicas` created, its pods running and its load balancer addressed: where most planner tests start. */
export function convergedWorld(replicas = 3): World {
  const w = new World(mailCluster({ replicas }));
  w.apply(plan(w.observed()));
  w.runAll();
  w.setLoadBalancer('127.41.0.1');
  w.apply(plan(w.observed()));
  return w;
}
