// Where the seconds of a scale event go: watches the cluster's pods, spool claims and
// ConfigMaps through the API server and notes, with this process's clock (ms), when each
// object first reached each stage (pod created, scheduled, has an address, container
// running, Ready, relabeled draining, drain requested, being deleted, gone; claim created,
// bound, gone; ConfigMap version written). `stages(since)` lists what happened after a time.
import { KubeConfig, Watch } from '@kubernetes/client-node';

export interface Mark {
  /** ms since the epoch, when the watch delivered it here */
  at: number;
  kind: 'Pod' | 'PersistentVolumeClaim' | 'ConfigMap' | 'MailCluster';
  name: string;
  stage: string;
}

interface Obj {
  metadata: { name: string; uid?: string; resourceVersion?: string; deletionTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { nodeName?: string; volumeName?: string; replicas?: number };
  status?: {
    podIP?: string; phase?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{ state?: { running?: unknown } }>;
  };
}

/** The stages an object of `kind` has reached, by name (a pod's and a claim's, in order). */
export function stagesOf(kind: Mark['kind'], type: string, o: Obj): string[] {
  const out: string[] = [];
  if (type === 'DELETED') return ['gone'];
  if (o.metadata.deletionTimestamp) out.push('deleting');
  if (kind === 'Pod') {
    out.push('created');
    if (o.spec?.nodeName) out.push('scheduled');
    if (o.status?.podIP) out.push('address');
    if (o.status?.containerStatuses?.some((c) => c.state?.running)) out.push('running');
    if (o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) out.push('ready');
    if (o.metadata.labels?.['mailcluster.io/role'] === 'draining') out.push('draining');
    if (o.metadata.annotations?.['mailcluster.io/drain-requested']) out.push('drain-requested');
  } else if (kind === 'PersistentVolumeClaim') {
    out.push('created');
    if (o.spec?.volumeName) out.push('volume');
    if (o.status?.phase === 'Bound') out.push('bound');
  } else if (kind === 'ConfigMap') {
    out.push(`written@${o.metadata.resourceVersion}`);
  } else if (kind === 'MailCluster') {
    out.push(`replicas=${o.spec?.replicas}`);
  }
  return out;
}

export class Timeline {
  readonly marks: Mark[] = [];
  readonly #seen = new Set<string>();
  readonly #aborts: AbortController[] = [];

  async start(kubeconfigPath: string, namespace: string, cluster: string): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const watch = new Watch(kc);
    const selector = { labelSelector: `mailcluster.io/cluster=${cluster}` };
    const paths: Array<[Mark['kind'], string, Record<string, string>]> = [
      ['Pod', `/api/v1/namespaces/${namespace}/pods`, selector],
      ['PersistentVolumeClaim', `/api/v1/namespaces/${namespace}/persistentvolumeclaims`, selector],
      ['ConfigMap', `/api/v1/namespaces/${namespace}/configmaps`, selector],
      ['MailCluster', `/apis/mailcluster.io/v1alpha1/namespaces/${namespace}/mailclusters`, {}],
    ];
    for (const [kind, path, query] of paths) {
      this.#aborts.push(await watch.watch(path, query, (type: string, o: Obj) => {
        const at = Date.now();
        // a pod of the same name comes back with a new uid: its stages count again
        const id = `${kind}/${o.metadata.name}/${o.metadata.uid ?? ''}`;
        for (const stage of stagesOf(kind, type, o)) {
          const key = `${id}/${stage}`;
          if (this.#seen.has(key)) continue;
          this.#seen.add(key);
          this.marks.push({ at, kind, name: o.metadata.name, stage });
        }
      }, () => undefined));
    }
  }

  stop(): void {
    for (const a of this.#aborts) a.abort();
  }

  /** Marks after `since`, as `+s.ss kind/name stage` lines (ConfigMap writes and pod stages). */
  describe(since: number, until = Infinity): string[] {
    return this.marks.filter((m) => m.at >= since && m.at <= until)
      .map((m) => `+${((m.at - since) / 1000).toFixed(2)} ${m.kind === 'PersistentVolumeClaim' ? 'pvc' : m.kind.toLowerCase()}/${m.name} ${m.stage}`);
  }
}
