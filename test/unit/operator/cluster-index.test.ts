// The index of children by MailCluster (cluster-index.ts), driven by the informer's own cache
// code (client-node's addOrUpdateObject / deleteObject / deleteItems, which decide which of
// add, update and delete the informer emits) through random sequences of watch events and
// relists. After every step the index must answer exactly what a scan of the whole cache,
// filtered by the membership rule, answers — including objects whose labels or owner moved
// them from one cluster to another, and deletes whose last state differs from the cached one.
import assert from 'node:assert/strict';
import fc from 'fast-check';
// Not part of client-node's public API, but exported "for testing": the very functions the
// informer runs on every watch event and relist.
import { addOrUpdateObject, deleteItems, deleteObject } from '@kubernetes/client-node/dist/cache.js';
import { ClusterIndex, clusterKeysOf } from '../../../operator/src/controller/cluster-index.ts';
import type { KObject } from '../../../operator/src/controller/observed.ts';

const CLUSTERS = ['a', 'b', 'c'];
const NAMESPACES = ['n1', 'n2'];

interface Shape { ns: string; name: string; cluster?: string; instance?: string; owner?: string; rv: number }

function objectOf(s: Shape): KObject {
  const labels: Record<string, string> = { 'app.kubernetes.io/managed-by': 'mailcluster-operator' };
  if (s.cluster) labels['mailcluster.io/cluster'] = s.cluster;
  if (s.instance) labels['app.kubernetes.io/instance'] = s.instance;
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      namespace: s.ns, name: s.name, labels, resourceVersion: String(s.rv),
      ...(s.owner ? { ownerReferences: [{ apiVersion: 'mailcluster.io/v1alpha1', kind: 'MailCluster', name: s.owner, uid: `uid-${s.owner}`, controller: true }] } : {}),
    } as KObject['metadata'],
  };
}

/** The membership rule, written independently of clusterKeysOf. */
function belongs(o: KObject, ns: string, cluster: string): boolean {
  if (o.metadata.namespace !== ns) return false;
  const l = o.metadata.labels ?? {};
  return l['mailcluster.io/cluster'] === cluster || l['app.kubernetes.io/instance'] === cluster
    || (o.metadata.ownerReferences ?? []).some((r) => r.controller && r.kind === 'MailCluster' && r.name === cluster);
}

type Op =
  | { t: 'event'; phase: 'ADDED' | 'MODIFIED' | 'DELETED'; shape: Omit<Shape, 'rv'> }
  | { t: 'relist'; shapes: Array<Omit<Shape, 'rv'>> };

const maybe = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: undefined });
const shape: fc.Arbitrary<Omit<Shape, 'rv'>> = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  name: fc.constantFrom('p0', 'p1', 'p2', 'p3'),
  cluster: maybe(fc.constantFrom(...CLUSTERS)),
  instance: maybe(fc.constantFrom(...CLUSTERS)),
  owner: maybe(fc.constantFrom(...CLUSTERS)),
}, { requiredKeys: ['ns', 'name'] });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('event' as const), phase: fc.constantFrom('ADDED' as const, 'MODIFIED' as const, 'DELETED' as const), shape }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('relist' as const), shapes: fc.array(shape, { maxLength: 6 }) }) },
);

describe('operator cluster index (children by MailCluster)', () => {
  it('answers what a full scan of the informer cache answers, through any add/update/delete/relist sequence', () => {
    let moves = 0;
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const cache = new Map<string, Map<string, KObject>>();
      const index = new ClusterIndex();
      const add = [(o: KObject) => index.upsert(o)];
      const update = [(o: KObject) => index.upsert(o)];
      const del = [(o: KObject) => index.remove(o)];
      let rv = 0;
      for (const o of ops) {
        if (o.t === 'event') {
          const obj = objectOf({ ...o.shape, rv: ++rv });
          const before = cache.get(o.shape.ns)?.get(o.shape.name);
          if (before && o.phase !== 'DELETED' && clusterKeysOf(before).join() !== clusterKeysOf(obj).join()) moves++;
          if (o.phase === 'DELETED') deleteObject(cache as never, obj as never, del as never);
          else addOrUpdateObject(cache as never, obj as never, add as never, update as never);
        } else {
          // A relist (after 410 Gone or a restart): client-node deletes what is gone, then adds or updates.
          const seen = new Map<string, KObject>();
          for (const s of o.shapes) seen.set(`${s.ns}/${s.name}`, objectOf({ ...s, rv: ++rv }));
          const items = [...seen.values()];
          deleteItems(cache as never, items as never, del as never);
          for (const item of items) addOrUpdateObject(cache as never, item as never, add as never, update as never);
        }
        const all = [...cache.values()].flatMap((m) => [...m.values()]);
        assert.equal(index.size, all.length, 'the index holds what the cache holds');
        for (const ns of NAMESPACES) {
          for (const c of CLUSTERS) {
            const want = all.filter((x) => belongs(x, ns, c)).map((x) => `${x.metadata.name}@${(x.metadata as { resourceVersion?: string }).resourceVersion}`).sort();
            const got = index.byCluster(ns, c).map((x) => `${x.metadata.name}@${(x.metadata as { resourceVersion?: string }).resourceVersion}`).sort();
            assert.deepEqual(got, want, `${ns}/${c}`);
          }
        }
      }
    }), { numRuns: 300 });
    assert.ok(moves > 50, `label or owner changes that move an object between clusters were exercised (${moves})`);
  });

  it('a label change moves an object to its new cluster and out of the old one; delete removes it whatever its last state says', () => {
    const index = new ClusterIndex();
    index.upsert(objectOf({ ns: 'n1', name: 'p0', cluster: 'a', instance: 'a', owner: 'a', rv: 1 }));
    assert.deepEqual(index.byCluster('n1', 'a').map((o) => o.metadata.name), ['p0']);
    index.upsert(objectOf({ ns: 'n1', name: 'p0', cluster: 'b', instance: 'b', rv: 2 }));
    assert.deepEqual(index.byCluster('n1', 'a'), []);
    assert.deepEqual(index.byCluster("n1", "b").map((o) => (o.metadata as { resourceVersion?: string }).resourceVersion), ['2']);
    assert.deepEqual(index.byCluster('n2', 'b'), [], 'namespaces are separate');
    index.remove(objectOf({ ns: 'n1', name: 'p0', cluster: 'c', rv: 3 })); // the final state names another cluster
    assert.deepEqual(index.byCluster('n1', 'b'), []);
    assert.equal(index.size, 0);
    assert.equal(index.keys, 0, 'no empty buckets left behind');
  });
});
