// How a reconcile finds its children: scanning the namespace's informer cache and filtering by
// owner (before issue 13) against the index by cluster (operator/src/controller/cluster-index.ts).
// One "pass" = every cluster of one namespace gathers its children of every watched kind once,
// as a resync or an operator start does. In memory, no server; medians of --runs passes.
//
//   node test/bench/operator-index/run.ts [--clusters 100,1000] [--runs 5]
import { loadavg } from 'node:os';
import { ClusterIndex } from '../../../operator/src/controller/cluster-index.ts';
import type { KObject } from '../../../operator/src/controller/observed.ts';
import { median, parseFlags, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { clusters: 'value', runs: 'value' });
const sizes = (flags.get('clusters') ?? '100,1000').split(',').map(Number);
const runs = positiveInt(flags, 'runs', 5);
const KINDS = ['Pod', 'ConfigMap', 'PersistentVolumeClaim', 'Service', 'PodDisruptionBudget', 'NetworkPolicy'];
const PER_KIND: Record<string, string[]> = { Pod: ['0'], ConfigMap: ['0-config'], PersistentVolumeClaim: ['0-spool'], Service: ['', '-peers'], PodDisruptionBudget: [''], NetworkPolicy: [''] };

function objects(n: number, kind: string): KObject[] {
  const out: KObject[] = [];
  for (let c = 0; c < n; c++) {
    const name = `mc${c}`;
    for (const suffix of PER_KIND[kind]) {
      out.push({
        kind, metadata: {
          namespace: 'mail', name: `${name}${suffix ? `-${suffix}`.replace('--', '-') : ''}`,
          labels: { 'mailcluster.io/cluster': name, 'app.kubernetes.io/instance': name },
          ownerReferences: [{ kind: 'MailCluster', name, uid: `uid-${name}`, controller: true }],
        },
      });
    }
  }
  return out;
}

function timed(fn: () => number): { ms: number; found: number } {
  const t0 = performance.now();
  const found = fn();
  return { ms: performance.now() - t0, found };
}

const rows: Array<Array<string | number>> = [];
for (const n of sizes) {
  // The informer cache as client-node keeps it: namespace -> name -> object; list(ns) copies the values.
  const caches = new Map(KINDS.map((k) => [k, new Map(objects(n, k).map((o) => [o.metadata.name, o]))]));
  const indexes = new Map(KINDS.map((k) => { const ix = new ClusterIndex(); for (const o of caches.get(k)!.values()) ix.upsert(o); return [k, ix]; }));
  const scan: number[] = [];
  const indexed: number[] = [];
  for (let r = 0; r < runs; r++) {
    const a = timed(() => {
      let found = 0;
      for (let c = 0; c < n; c++) {
        const uid = `uid-mc${c}`;
        for (const k of KINDS) found += Array.from(caches.get(k)!.values()).filter((o) => (o.metadata.ownerReferences ?? []).some((x) => x.controller && x.uid === uid)).length;
      }
      return found;
    });
    const b = timed(() => {
      let found = 0;
      for (let c = 0; c < n; c++) {
        const uid = `uid-mc${c}`;
        for (const k of KINDS) found += indexes.get(k)!.byCluster('mail', `mc${c}`).filter((o) => (o.metadata.ownerReferences ?? []).some((x) => x.controller && x.uid === uid)).length;
      }
      return found;
    });
    if (a.found !== b.found) throw new Error(`the index found ${b.found} children, the scan ${a.found}`);
    scan.push(a.ms);
    indexed.push(b.ms);
  }
  const s = median(scan);
  const i = median(indexed);
  rows.push([n, s.toFixed(1), i.toFixed(2), (s / i).toFixed(0), ((s / n) * 1000).toFixed(0), ((i / n) * 1000).toFixed(1)]);
}
console.log(`children lookup for a pass over every cluster of one namespace (median of ${runs}; load ${loadavg()[0].toFixed(1)}, machine shared)`);
console.log(table(['clusters', 'scan ms', 'index ms', 'scan/index', 'scan µs per cluster', 'index µs per cluster'], rows));
