// The shapes the planner reads: only the fields it needs from what the informers hold.
import type { MailCluster, MailClusterStatus } from '../api/v1alpha1/types.ts';
import type { ClusterCredentials } from '../resources/credentials.ts';
import type { AdminAccess } from '../resources/network-policy.ts';

export interface Meta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: unknown;
  ownerReferences?: Array<{ uid?: string; controller?: boolean; kind?: string; name?: string }>;
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  [key: string]: unknown;
}

export interface ObservedPod extends KObject {
  spec?: { volumes?: Array<{ name?: string; persistentVolumeClaim?: { claimName?: string } }> };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{ ready?: boolean; restartCount?: number; state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string } } }>;
  };
}

export interface ObservedService extends KObject {
  spec?: { clusterIP?: string; type?: string };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
}

export interface ObservedConfigMap extends KObject {
  data?: Record<string, string>;
}

/**
 * What GET /queue on a draining node answered (or why it could not be asked). `uid` is the
 * UID of the pod whose address was asked, so an answer is never credited to another pod of
 * the same name; `drained` is the node's own word (contract 2), absent = not drained.
 * Answers are gathered in the background (queue-prober.ts), so a reconcile may read one that
 * is some time old: `askedAt` (epoch ms, when the request was sent) and `restarts` (the pod's
 * container restart count then) let the planner judge whether it still holds.
 */
export type QueueProbe =
  | { total: number; draining?: boolean; drained?: boolean; uid?: string; askedAt?: number; restarts?: number }
  | { error: string; uid?: string };

/** The user's TLS Secret, when spec.tls names one. */
export type TlsSecretState = 'ok' | 'missing' | 'invalid';

export interface ObservedState {
  cluster: MailCluster;
  /** Children of this cluster (the informers' view, filtered by owner). */
  pods: ObservedPod[];
  configMaps: ObservedConfigMap[];
  claims: KObject[];
  services: ObservedService[];
  podDisruptionBudgets: KObject[];
  networkPolicies: KObject[];
  /** Each node's ServiceAccount, Role and RoleBinding <name>-<i>-node, by kind (listed items carry no kind). */
  nodeAccess: Record<'ServiceAccount' | 'Role' | 'RoleBinding', KObject[]>;
  /** Present when spec.tls is set and the operator may read Secrets in the namespace. */
  tlsSecret?: TlsSecretState;
  /** Queue probes of draining pods, by pod name. */
  queues: Record<string, QueueProbe>;
  /**
   * May this cluster start rolling a pod-template change? The operator's cluster-wide pace
   * (--max-concurrent-rollouts), decided at the edge; undefined: yes. A cluster already rolling
   * always continues.
   */
  rolloutAllowed?: boolean;
  /** The last reconcile's error, surfaced as Degraded. */
  lastError?: string;
  /** The cluster's admin token and MAILQv2 password, derived from the operator's master key. */
  credentials: ClusterCredentials;
  /** Who may reach the admin port (the NetworkPolicy's rule). */
  adminAccess: AdminAccess;
  now: Date;
}

export type { MailClusterStatus };
