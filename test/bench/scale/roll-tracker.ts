// How many MailClusters roll at once: fed every pod event after the image change, it keeps
// per cluster whether its roll has begun (a pod drained, gone or on the new image) and
// ended (every replica on the new image, ready and serving), and the most ever in between.
export interface PodView {
  namespace: string;
  name: string;
  cluster: string;
  image: string;
  ready: boolean;
  role: string;
  deleted: boolean;
}

interface ClusterRoll {
  pods: Map<string, PodView>;
  startedAt?: number;
  doneAt?: number;
}

export class RollTracker {
  readonly #clusters = new Map<string, ClusterRoll>();
  readonly #newImage: string;
  readonly #replicas: number;
  #active = 0;
  maxActive = 0;
  maxActiveAt = 0;

  constructor(newImage: string, replicas: number) {
    this.#newImage = newImage;
    this.#replicas = replicas;
  }

  /** Pods as they were when the image changed (nothing has begun yet). */
  seed(pod: PodView): void {
    this.#cluster(pod).pods.set(pod.name, pod);
  }

  observe(pod: PodView, now: number): void {
    const c = this.#cluster(pod);
    if (pod.deleted) c.pods.delete(pod.name);
    else c.pods.set(pod.name, pod);
    if (c.startedAt === undefined && (pod.deleted || pod.role === 'draining' || pod.image === this.#newImage)) {
      c.startedAt = now;
      this.#active++;
      if (this.#active > this.maxActive) { this.maxActive = this.#active; this.maxActiveAt = now; }
    }
    if (c.startedAt !== undefined && c.doneAt === undefined && this.#rolled(c)) {
      c.doneAt = now;
      this.#active--;
    }
  }

  get active(): number { return this.#active; }

  /** Clusters whose roll ended. */
  get done(): number { return [...this.#clusters.values()].filter((c) => c.doneAt !== undefined).length; }

  get total(): number { return this.#clusters.size; }

  /** Roll durations (ms) of the clusters that finished, ascending. */
  durations(): number[] {
    return [...this.#clusters.values()].filter((c) => c.doneAt !== undefined).map((c) => c.doneAt! - c.startedAt!).sort((a, b) => a - b);
  }

  #rolled(c: ClusterRoll): boolean {
    const pods = [...c.pods.values()];
    return pods.length === this.#replicas && pods.every((p) => p.image === this.#newImage && p.ready && p.role === 'serving');
  }

  #cluster(pod: PodView): ClusterRoll {
    const key = `${pod.namespace}/${pod.cluster}`;
    let c = this.#clusters.get(key);
    if (!c) { c = { pods: new Map() }; this.#clusters.set(key, c); }
    return c;
  }
}
