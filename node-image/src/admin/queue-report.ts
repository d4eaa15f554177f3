// GET /queue (BRIEF contract 2, node -> operator), pure: the queue's counts and the drain
// state in one JSON object. `drained` is the one fact the operator may delete a spool
// claim on, so it is decided here and nowhere else.

/** What the node observes for the report. */
export interface QueueObservation {
  /** Messages on the spool (held ones included). */
  total: number;
  /** Messages with a deferred recipient. */
  deferred: number;
  /** Messages being delivered right now. */
  active: number;
  /** Messages on hold (queue operations); 0 where holds do not exist. */
  held: number;
  /** Arrival time of the oldest message (ms since the epoch), null when empty. */
  oldestReceivedAt: number | null;
  draining: boolean;
  /** The inbound SMTP listener is open. */
  listening: boolean;
  /** Open inbound SMTP connections. */
  sessions: number;
  /** DATA transactions not yet answered (a late arrival may still be spooling). */
  transactions: number;
}

export interface QueueReport {
  total: number;
  deferred: number;
  active: number;
  held: number;
  draining: boolean;
  listening: boolean;
  sessions: number;
  drained: boolean;
  oldestSeconds: number | null;
}

/** Drained: draining, listener closed, no session, nothing spooling, nothing queued (held included). */
export function isDrained(o: QueueObservation): boolean {
  return o.draining && !o.listening && o.sessions === 0 && o.transactions === 0 && o.total === 0;
}

export function queueReport(o: QueueObservation, now: number): QueueReport {
  return {
    total: o.total,
    deferred: o.deferred,
    active: o.active,
    held: o.held,
    draining: o.draining,
    listening: o.listening,
    sessions: o.sessions,
    drained: isDrained(o),
    oldestSeconds: o.oldestReceivedAt === null ? null : Math.max(0, Math.floor((now - o.oldestReceivedAt) / 1000)),
  };
}
