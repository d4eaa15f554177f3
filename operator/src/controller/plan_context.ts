// What every part of the planner shares: the Plan it fills, the cluster it plans for, and the
// view of that cluster's pods. Pure data and small helpers; no part of the plan is decided here.
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster, MailClusterStatus } from '../api/v1alpha1/types.ts';
import { LABEL_ROLE } from '../resources/labels.ts';
import { ADMIN_PORT } from '../resources/names.ts';
import { objectContainsDesired } from './compare.ts';
import type { ClusterFacts } from './conditions/index.ts';
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

/** A Secret made once with fresh keys: created (409 = it exists), never read or rewritten. */
export interface CreateOnceSecret {
  name: string;
  /** The name its leaf certificate is for. */
  dnsName: string;
}

export interface Plan {
  /** Server-side applies; the controller applies pods after everything else. */
  apply: KObject[];
  /** The Secrets this cluster should hold, whole. The operator cannot read Secrets: the
   * controller writes one only when it differs from what it last wrote (first, before pods). */
  secrets: KObject[];
  /** The peer TLS Secret, created before pods when the controller has not made sure of it yet. */
  createOnce: CreateOnceSecret[];
  /** Objects of kinds the operator does not watch (cert-manager's Certificate, whose CRD may be
   * absent): applied before pods, only when changed since this process last applied them. */
  unwatched: KObject[];
  patchPods: PodPatch[];
  drain: DrainRequest[];
  delete: DeleteRequest[];
  events: PlannedEvent[];
  /** The new status, only when it differs from the current one. */
  status?: MailClusterStatus;
  /** The MailCluster's new finalizer list, only when it must change (retentionPolicy Delete). */
  finalizers?: string[];
  /** Come back after this long even without a watch event (drain polling, waiting). */
  requeueAfterMs?: number;
  /** This cluster rolls a pod-template change (holds a rollout slot), or waits for a slot to. */
  rollout?: 'rolling' | 'waiting';
}

/** How often a draining node is asked again to drain (a node restart forgets it). */
export const DRAIN_REREQUEST_MS = 30_000;
/** How often a draining node's queue is looked at. */
export const POLL_MS = 500;
// The TLS Secret is not ours, so no watch tells when it appears: look again (a read, no write).
export const TLS_RECHECK_MS = 5_000;

export type TlsProblem = { reason: 'TLSSecretMissing' | 'TLSSecretInvalid'; secret: string };

/** One pass of the planner over one cluster: its inputs and the plan being filled. */
export interface PlanContext {
  out: Plan;
  observed: ObservedState;
  cluster: MailCluster;
  name: string;
  spec: DefaultedSpec;
  desired: number;
  now: Date;
  tlsProblem?: TlsProblem;
  /** Facts about draining pods, gathered for the conditions. */
  drainingFacts: ClusterFacts['draining'];
  /** Set by the roll planner: rolling (holds a slot) or waiting for one. */
  rollout?: 'rolling' | 'waiting';
  requeue(ms: number): void;
  applyIfChanged(want: KObject, have: KObject | undefined): void;
}

/** The cluster's own pods, by index and by what they are doing. */
export interface PodView {
  byIndex: Map<number, ObservedPod>;
  live: Array<[number, ObservedPod]>;
  terminating: ObservedPod[];
}

export const isTerminating = (o: KObject): boolean => Boolean(o.metadata.deletionTimestamp);
export const roleOf = (p: ObservedPod): string => p.metadata.labels?.[LABEL_ROLE] ?? 'serving';
export const isPodReady = (p: ObservedPod): boolean => Boolean(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

export function loadBalancerAddresses(service: ObservedService | undefined): string[] {
  return (service?.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? i.hostname ?? '').filter((a) => a.length > 0);
}

export function byName<T extends KObject>(objects: T[], name: string): T | undefined {
  return objects.find((o) => o.metadata.name === name);
}

export function sinceMs(value: string | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : now.getTime() - t;
}

export const iso = (d: Date): string => d.toISOString();
export const adminUrl = (ip: string, path: string): string => `http://${ip.includes(':') ? `[${ip}]` : ip}:${ADMIN_PORT}${path}`;

export const emptyPlan = (): Plan => ({ apply: [], secrets: [], createOnce: [], unwatched: [], patchPods: [], drain: [], delete: [], events: [] });

/** `desired` is spec.replicas, or 0 while a MailCluster with whenDeleted: Delete drains out. */
export function newContext(observed: ObservedState, spec: DefaultedSpec, desired = spec.replicas): PlanContext {
  const out = emptyPlan();
  return {
    out,
    observed,
    cluster: observed.cluster,
    name: observed.cluster.metadata.name,
    spec,
    desired,
    now: observed.now,
    drainingFacts: [],
    requeue(ms) { out.requeueAfterMs = Math.min(out.requeueAfterMs ?? ms, ms); },
    applyIfChanged(want, have) { if (!have || !objectContainsDesired(want, have)) out.apply.push(want); },
  };
}
