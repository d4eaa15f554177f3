// When the spool copies live records out of an old segment (compaction), as a pure
// decision. Copying only pays when it frees space: a segment is rewritten when little of
// it is live (below `minLiveShare`, Bitcask's merge trigger), or, when the disk is short of
// space, the one that frees the most. A mostly-live segment is never rewritten on a
// roomy disk, so a held backlog costs no writes while it waits. Bytes rewritten are
// bounded by a token bucket refilled at `budgetBytesPerHour` (at most one hour saved up);
// a short disk may overdraw it, because running out of space refuses mail.

export interface SegmentView {
  seq: number;
  /** Bytes of the segment file. */
  size: number;
  /** Bytes a compaction would copy: live message records, latest state records, needed removal records. */
  liveBytes: number;
  /** Bytes of message records written to the segment, and of those still live (state records excluded). */
  contentBytes?: number;
  liveContentBytes?: number;
  /** The segment being appended to (never compacted). */
  current: boolean;
}

export interface CompactionSettings {
  /** Rewrite a segment whose live share is below this (0..1). */
  minLiveShare: number;
  budgetBytesPerHour: number;
  /** Free bytes on the spool's filesystem below which the disk counts as short (the spool's default: a tenth of the filesystem, at least two segments). */
  lowSpaceBytes: number;
  /** On a short disk, rewrite only a segment that frees at least this share of its size. */
  minFreedShareWhenShort: number;
  /**
   * Start compacting (on a roomy disk) only once the sparse segments together hold at least
   * this many dead bytes, so that each run frees about a segment or more and the segments it
   * writes stay few and full. The spool sets it to its segment size.
   */
  minReclaimBytes: number;
}

export const defaultCompactionSettings: CompactionSettings = {
  minLiveShare: 0.5,
  budgetBytesPerHour: 4 * 1024 ** 3,
  lowSpaceBytes: 512 * 1024 ** 2,
  minFreedShareWhenShort: 0.1,
  minReclaimBytes: 0,
};

export interface Budget {
  /** Bytes that may be rewritten now. */
  tokens: number;
  /** ms (policy clock) of the last refill. */
  at: number;
}

const HOUR_MS = 3_600_000;

/** The budget at `now`: refilled in proportion to the time passed, capped at one hour's worth. */
export function refill(budget: Budget, now: number, settings: CompactionSettings): Budget {
  const elapsed = Math.max(0, now - budget.at);
  const tokens = Math.min(settings.budgetBytesPerHour, budget.tokens + (elapsed * settings.budgetBytesPerHour) / HOUR_MS);
  return { tokens, at: Math.max(budget.at, now) };
}

/**
 * The live share that decides. A segment holding live messages counts only message records:
 * state updates superseded by later ones never make a message's content worth copying
 * (deferrals must not force content copies). A segment without live messages counts all its
 * bytes (copying its few live state records is cheap). A short disk counts all bytes too.
 */
export function liveShare(s: SegmentView, short: boolean): number {
  const liveContent = s.liveContentBytes ?? 0;
  if (!short && liveContent > 0 && (s.contentBytes ?? 0) > 0) return liveContent / s.contentBytes!;
  return s.liveBytes / s.size;
}

export type CompactionDecision =
  | { compact: false; why: 'nothing-sparse' | 'over-budget' | 'too-little-to-reclaim' }
  | { compact: true; seq: number; reason: 'sparse' | 'disk-short'; copyBytes: number };

/**
 * Which segment to compact now, if any. Segments with nothing live are not candidates
 * (they are deleted without copying). Among candidates the lowest live share wins (the
 * most space freed per byte copied).
 */
export function decideCompaction(segments: SegmentView[], budget: Budget, freeBytes: number, settings: CompactionSettings): CompactionDecision {
  const short = freeBytes < settings.lowSpaceBytes;
  let best: SegmentView | undefined;
  let bestShare = Infinity;
  let overBudget = false;
  let reclaimable = 0;
  for (const s of segments) {
    if (s.current || s.liveBytes <= 0 || s.size <= 0) continue;
    const share = liveShare(s, short);
    const eligible = share < settings.minLiveShare || (short && 1 - share >= settings.minFreedShareWhenShort);
    if (!eligible) continue;
    if (!short && s.liveBytes > budget.tokens) { overBudget = true; continue; }
    reclaimable += s.size - s.liveBytes;
    if (share < bestShare) { best = s; bestShare = share; }
  }
  if (!best) return { compact: false, why: overBudget ? 'over-budget' : 'nothing-sparse' };
  if (!short && reclaimable < settings.minReclaimBytes) return { compact: false, why: 'too-little-to-reclaim' };
  return { compact: true, seq: best.seq, reason: bestShare < settings.minLiveShare ? 'sparse' : 'disk-short', copyBytes: best.liveBytes };
}
