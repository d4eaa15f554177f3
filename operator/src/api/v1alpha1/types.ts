// MailCluster v1alpha1 types, derived from the schema data (schema.ts).
import type { FromSchema } from './from-schema.ts';
import type { specSchema, statusSchema } from './schema.ts';

export const GROUP = 'mailcluster.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'MailCluster';
export const PLURAL = 'mailclusters';
export const SINGULAR = 'mailcluster';
export const SHORT_NAMES = ['mc'];

export type MailClusterSpec = FromSchema<typeof specSchema>;
export type MailClusterStatus = FromSchema<typeof statusSchema>;
export type Condition = NonNullable<MailClusterStatus['conditions']>[number];
export type ConditionType = 'Ready' | 'Progressing' | 'Degraded';

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string | Date;
  finalizers?: string[];
  creationTimestamp?: string | Date;
}

export interface MailCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: MailClusterSpec;
  status?: MailClusterStatus;
}
