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
  apiRequests: Counter<'verb' | 'resource' | 'code'>;
  rolloutsInProgress: Gauge;
  queueProbes: Counter<'result'>;
  queueProbesInFlight: Gauge;
  deferredWrites: Counter<'kind'>;
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
    apiRequests: new Counter({
      name: 'mailcluster_operator_api_requests_total', help: 'Requests sent to the API server (reads, watches and writes), by verb, resource and answer code (error: no answer).',
      labelNames: ['verb', 'resource', 'code'], registers: [registry],
    }),
    rolloutsInProgress: new Gauge({ name: 'mailcluster_operator_rollouts_in_progress', help: 'MailClusters rolling a pod-template change (from the first replaced pod until every pod runs the new template and is Ready).', registers: [registry] }),
    queueProbes: new Counter({ name: 'mailcluster_operator_queue_probes_total', help: 'GET /queue probes of draining nodes, by result (answer, error).', labelNames: ['result'], registers: [registry] }),
    queueProbesInFlight: new Gauge({ name: 'mailcluster_operator_queue_probes_in_flight', help: 'GET /queue probes sent and not yet answered.', registers: [registry] }),
    deferredWrites: new Counter({
      name: 'mailcluster_operator_deferred_writes_total', help: 'Writes held back because the operator\'s own last write of that object (or status) was not in its cache yet, by kind.',
      labelNames: ['kind'], registers: [registry],
    }),
    isLeader: new Gauge({ name: 'mailcluster_operator_leader', help: '1 while this process is the elected leader (or runs without election).', registers: [registry] }),
  };
}
