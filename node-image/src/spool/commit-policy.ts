// When the spool starts its next group commit (pure). A record someone's reply waits for
// (a message's 250, an admin hold) goes out at once, in a commit of its own if a slot is
// free. A removal record only lets space come back and a finished message not be retried
// after a crash, so it rides with the next commit, and starts one of its own only when
// none is running; a delivery's state update may even wait a while for company.

/** 'now': goes at once; 'ride': waits while a commit runs; 'lazy': also waits up to the update delay. */
export type Urgency = 'now' | 'ride' | 'lazy';

export type CommitVerdict =
  | { wait: false }
  /** Wait for the running commit to end (its end pumps again). */
  | { wait: 'commit' }
  /** Wait `ms` for company. */
  | { wait: 'timer'; ms: number };

/**
 * Whether a batch of the `pending` records (non-empty, oldest first) starts now, given the
 * commits in flight. `flushing` (flush or close) sends everything at once.
 */
export function commitVerdict(pending: ReadonlyArray<{ urgency: Urgency; at: number }>, flights: number, flushing: boolean, now: number, updateDelayMs: number): CommitVerdict {
  if (flushing || pending.some((p) => p.urgency === 'now')) return { wait: false };
  if (flights > 0) return { wait: 'commit' };
  if (pending.some((p) => p.urgency === 'ride')) return { wait: false };
  const ms = pending[0].at + updateDelayMs - now;
  return ms > 0 ? { wait: 'timer', ms } : { wait: false };
}
