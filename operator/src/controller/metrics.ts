// The operator's Prometheus metrics (own registry, so tests can run several managers).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface OperatorMetrics {
  registry: Registry;
  reconciles: Counter<'result'>;
  reconcileErrors: Counter;
  reconcileDuration: Histogram;
  workqueueDepth: Gauge;
  watchRestarts: Counter<'resource'>;
  writes: Counter<'verb' | 'kind'>;
  isLeader: Gauge;
}

export function createMetrics(): OperatorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mailcluster_operator_process_' });
  return {
    registry,
    reconciles: new Counter({ name: 'mailcluster_operator_reconciles_total', help: 'Reconciles run, by result (success, error).', labelNames: ['result'], registers: [registry] }),
    reconcileErrors: new Counter({ name: 'mailcluster_operator_reconcile_errors_total', help: 'Reconciles that failed.', registers: [registry] }),
    reconcileDuration: new Histogram({
      name: 'mailcluster_operator_reconcile_duration_seconds', help: 'Time one reconcile took.', registers: [registry],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    workqueueDepth: new Gauge({ name: 'mailcluster_operator_workqueue_depth', help: 'Keys waiting in the work queue.', registers: [registry] }),
    watchRestarts: new Counter({ name: 'mailcluster_operator_watch_restarts_total', help: 'Watches restarted after an error, by resource.', labelNames: ['resource'], registers: [registry] }),
    writes: new Counter({ name: 'mailcluster_operator_writes_total', help: 'Write requests sent to the API server, by verb and kind.', labelNames: ['verb', 'kind'], registers: [registry] }),
    isLeader: new Gauge({ name: 'mailcluster_operator_leader', help: '1 while this process is the elected leader (or runs without election).', registers: [registry] }),
  };
}
