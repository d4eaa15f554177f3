// Per-cluster credentials derived from the operator's master key (BRIEF contract 1): nothing
// random is stored per cluster, so the operator never reads a Secret back to learn a password
// it made; the same key gives the same values after a restart or on another replica.
// The cluster's uid is in the input, so a MailCluster deleted and created again with the same
// name gets new credentials.
import { createHash, createHmac } from 'node:crypto';

export interface ClusterIdentity {
  namespace: string;
  name: string;
  uid: string;
}

/** The smallest master key accepted: 32 bytes, as HMAC-SHA256's block of strength. */
export const MIN_MASTER_KEY_BYTES = 32;

function derive(masterKey: Buffer, purpose: 'admin' | 'mailq', c: ClusterIdentity): string {
  if (masterKey.length < MIN_MASTER_KEY_BYTES) throw new Error(`the operator master key must have at least ${MIN_MASTER_KEY_BYTES} bytes`);
  if (!c.uid) throw new Error(`MailCluster ${c.namespace}/${c.name} has no uid`);
  return createHmac('sha256', masterKey).update(`${purpose}/${c.namespace}/${c.name}/${c.uid}`).digest('hex');
}

/** The admin API's bearer token: HMAC-SHA256(master key, "admin/ns/name/uid"), hex. */
export function adminToken(masterKey: Buffer, c: ClusterIdentity): string {
  return derive(masterKey, 'admin', c);
}

/** The MAILQv2 (etrn-cluster) password: HMAC-SHA256(master key, "mailq/ns/name/uid"), hex. */
export function mailqPassword(masterKey: Buffer, c: ClusterIdentity): string {
  return derive(masterKey, 'mailq', c);
}

/** What the node stores instead of the token (PARAM admin-token-sha256). */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface ClusterCredentials {
  adminToken: string;
  mailqPassword: string;
}

export function clusterCredentials(masterKey: Buffer, c: ClusterIdentity): ClusterCredentials {
  return { adminToken: adminToken(masterKey, c), mailqPassword: mailqPassword(masterKey, c) };
}
