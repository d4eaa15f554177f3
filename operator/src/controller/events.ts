// Kubernetes Events (core/v1) about a MailCluster. The planner is level-based and plans the
// same warning on every pass; the recorder sends one Event per (object, reason, message)
// per window, counting repeats, as the kubelet's event correlator does.
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, KIND, type MailCluster } from '../api/v1alpha1/types.ts';
import type { PlannedEvent } from './plan.ts';

const WINDOW_MS = 10 * 60_000;

export class EventRecorder {
  private readonly recent = new Map<string, number>();
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private readonly component: string;
  private readonly onWrite: () => void;

  constructor(core: CoreV1Api, log: Logger, component: string, onWrite: () => void = () => {}) {
    this.core = core;
    this.log = log;
    this.component = component;
    this.onWrite = onWrite;
  }

  async record(cluster: MailCluster, event: PlannedEvent): Promise<void> {
    const key = `${cluster.metadata.uid}/${event.reason}/${event.message}`;
    const now = Date.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < WINDOW_MS) return;
    this.recent.set(key, now);
    if (this.recent.size > 5000) {
      for (const [k, t] of this.recent) if (now - t >= WINDOW_MS) this.recent.delete(k);
    }
    const time = new Date(now);
    try {
      this.onWrite();
      await this.core.createNamespacedEvent({
        namespace: cluster.metadata.namespace,
        body: {
          metadata: { generateName: `${cluster.metadata.name}.`, namespace: cluster.metadata.namespace },
          involvedObject: { apiVersion: API_VERSION, kind: KIND, name: cluster.metadata.name, namespace: cluster.metadata.namespace, uid: cluster.metadata.uid },
          type: event.type,
          reason: event.reason,
          message: event.message.slice(0, 1024),
          source: { component: this.component },
          reportingComponent: this.component,
          reportingInstance: this.component,
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      });
    } catch (err) {
      // An event that cannot be written must not fail the reconcile.
      this.log.warn({ err: String(err), reason: event.reason }, 'event not recorded');
    }
  }
}
