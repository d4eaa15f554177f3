// Prometheus metrics of one node (own registry, so several nodes can share a process in tests).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  return {
    registry,
    received: new Counter({ name: 'mailcluster_messages_received_total', help: 'Messages accepted with 250 after DATA (on disk).', registers: r }),
    rejected: new Counter({ name: 'mailcluster_smtp_rejections_total', help: 'Commands refused, by reason.', labelNames: ['reason'], registers: r }),
    delivered: new Counter({ name: 'mailcluster_messages_delivered_total', help: 'Recipients delivered to the next hop.', registers: r }),
    deferred: new Counter({ name: 'mailcluster_messages_deferred_total', help: 'Recipients deferred for a retry.', registers: r }),
    bounced: new Counter({ name: 'mailcluster_messages_bounced_total', help: 'Recipients failed permanently (a DSN goes to the sender unless it is the null sender).', registers: r }),
    queueMessages: new Gauge({ name: 'mailcluster_queue_messages', help: 'Messages in the queue.', registers: r }),
    deliveryDuration: new Histogram({
      name: 'mailcluster_delivery_duration_seconds',
      help: 'Time of one delivery attempt (one message to one destination).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    connections: new Counter({ name: 'mailcluster_smtp_connections_total', help: 'Inbound SMTP connections accepted.', registers: r }),
    connectionsActive: new Gauge({ name: 'mailcluster_smtp_connections_active', help: 'Inbound SMTP connections open now.', registers: r }),
    reloads: new Counter({ name: 'mailcluster_config_reloads_total', help: 'Configuration reloads, by result.', labelNames: ['result'], registers: r }),
    spoolFsyncs: new Counter({ name: 'mailcluster_spool_fsyncs_total', help: 'fdatasync calls of the spool (group commits).', registers: r }),
    spoolCommit: new Histogram({
      name: 'mailcluster_spool_commit_seconds',
      help: 'Time of one group commit (write + fdatasync).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    }),
    spoolCommitRecords: new Histogram({
      name: 'mailcluster_spool_commit_records',
      help: 'Records made durable by one group commit.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200],
      registers: r,
    }),
  };
}

/** What the spool metrics read at scrape time (the Spool, in practice). */
export interface SpoolGauges {
  stats: { quarantined: number; bytesWritten: Record<'accept' | 'compaction' | 'metadata', number> };
  liveBytes: number;
  segmentCount: number;
}

/** The spool's counters and gauges, read from the spool when scraped. */
export function registerSpoolMetrics(registry: Registry, spool: SpoolGauges): void {
  const r = [registry];
  new Counter({
    name: 'mailcluster_spool_quarantined_total', help: 'Spool records (or blob files) that failed their check and were moved to POSTOFFICE/quarantine.', registers: r,
    collect() { this.reset(); this.inc(spool.stats.quarantined); },
  });
  new Counter({
    name: 'mailcluster_spool_bytes_written_total', help: 'Bytes the spool wrote, by reason: accept (new messages), compaction (copies of live messages), metadata (state and removal records).', labelNames: ['reason'], registers: r,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(spool.stats.bytesWritten)) this.inc({ reason }, n);
    },
  });
  new Gauge({ name: 'mailcluster_spool_live_bytes', help: 'Bytes of queued messages in the spool (records and blob files).', registers: r, collect() { this.set(spool.liveBytes); } });
  new Gauge({ name: 'mailcluster_spool_segments', help: 'Segment files of the spool log.', registers: r, collect() { this.set(spool.segmentCount); } });
}

export type Metrics = ReturnType<typeof createMetrics>;
