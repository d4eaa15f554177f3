// When a DATA transaction writes what it holds to its blob file (pure; server.ts onData).
// A message's first `thresholdBytes` stay in memory, so a small message becomes one spool
// record; past that it is written on in `stepBytes` steps. Many sessions arriving at once
// would each hold up to the threshold (200 sessions: 50 MB at 256 KiB), so while the
// sessions together hold more than `budgetBytes` not yet written, a message already past
// one step spills at once (it becomes blob-backed, as a large one). A message smaller than
// a step never spills early.

export interface SpillLimits {
  thresholdBytes: number;
  stepBytes: number;
  /** DATA bytes all sessions may hold before their first spill, together. */
  budgetBytes: number;
}

/**
 * `held`: bytes this transaction holds unwritten; `spilling`: it has a blob already;
 * `heldByAll`: unwritten bytes of every transaction that has not spilled yet (this one included).
 */
export function shouldSpill(held: number, spilling: boolean, heldByAll: number, limits: SpillLimits): boolean {
  if (spilling) return held >= limits.stepBytes;
  if (held >= limits.thresholdBytes) return true;
  return held >= limits.stepBytes && heldByAll > limits.budgetBytes;
}

/** Default budget of unwritten DATA across sessions. */
export const DEFAULT_DATA_MEMORY_BUDGET_BYTES = 16 * 1024 * 1024;
