// An index of one kind's cached objects by the MailCluster they belong to, so that a reconcile
// reads only its own children instead of filtering a whole namespace (which makes a pass over
// N clusters in one namespace cost N², and 1,000 clusters a storm of its own).
//
// An object belongs to cluster `<ns>/<name>` by its cluster label (`mailcluster.io/cluster`),
// its instance label (`app.kubernetes.io/instance`) or its controlling MailCluster owner
// reference: every child the operator makes carries all three (spool claims no owner), and an
// object made by hand or by an earlier version may carry only one. The reconciler still checks
// the owner UID (or, for claims, the label rule) on what the index returns: the index only
// narrows, it never decides.
//
// Fed by the informer's add/update/delete events. An object is known by namespace/name (as the
// informer's cache knows it), and its keys are remembered, so an update that changes a label
// moves it between keys and a delete removes it from the keys it was filed under — whatever
// the deleted object's last state says.
import { KIND } from '../api/v1alpha1/types.ts';
import { LABEL_CLUSTER, LABEL_INSTANCE } from '../resources/labels.ts';
import type { KObject } from './observed.ts';

/** `<ns>/<cluster>` keys an object is filed under (none for a cluster-scoped object). */
export function clusterKeysOf(obj: KObject): string[] {
  const ns = obj.metadata.namespace;
  if (!ns) return [];
  const names = new Set<string>();
  const labels = obj.metadata.labels ?? {};
  if (labels[LABEL_CLUSTER]) names.add(labels[LABEL_CLUSTER]);
  if (labels[LABEL_INSTANCE]) names.add(labels[LABEL_INSTANCE]);
  for (const r of obj.metadata.ownerReferences ?? []) if (r.controller && r.kind === KIND && r.name) names.add(r.name);
  return [...names].map((n) => `${ns}/${n}`);
}

const idOf = (obj: KObject): string => `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;

export class ClusterIndex {
  /** Each object's current state and the keys it is filed under, by namespace/name. */
  private readonly filed = new Map<string, { obj: KObject; keys: string[] }>();
  private readonly buckets = new Map<string, Map<string, KObject>>();

  /** An informer add or update: files the object under its current keys only. */
  upsert(obj: KObject): void {
    const id = idOf(obj);
    const keys = clusterKeysOf(obj);
    const before = this.filed.get(id);
    for (const k of before?.keys ?? []) if (!keys.includes(k)) this.unfile(k, id);
    for (const k of keys) {
      let bucket = this.buckets.get(k);
      if (!bucket) { bucket = new Map(); this.buckets.set(k, bucket); }
      bucket.set(id, obj);
    }
    this.filed.set(id, { obj, keys });
  }

  /** An informer delete: removes the object from wherever it was filed. */
  remove(obj: KObject): void {
    const id = idOf(obj);
    const before = this.filed.get(id);
    if (!before) return;
    for (const k of before.keys) this.unfile(k, id);
    this.filed.delete(id);
  }

  /** The objects filed under cluster `<namespace>/<name>`. */
  byCluster(namespace: string, name: string): KObject[] {
    const bucket = this.buckets.get(`${namespace}/${name}`);
    return bucket ? [...bucket.values()] : [];
  }

  /** How many objects are filed (for tests and metrics). */
  get size(): number { return this.filed.size; }
  /** How many cluster keys have at least one object. */
  get keys(): number { return this.buckets.size; }

  private unfile(key: string, id: string): void {
    const bucket = this.buckets.get(key);
    if (!bucket) return;
    bucket.delete(id);
    if (bucket.size === 0) this.buckets.delete(key);
  }
}
