// The operator-wide pace of pod-template rollouts (--max-concurrent-rollouts): which clusters
// hold a rollout slot, which wait for one, and waking the next waiting cluster when a slot
// frees. Only bookkeeping: whether a cluster is rolling is the planner's reading of observed
// state (cluster_roll.ts rollingNow), reported after every reconcile and, at start, for every
// cluster before any worker runs (so an operator restart finds the rollouts in progress and
// does not start more). Nothing here is remembered across a restart.
//
// Calls happen between a reconcile's last await and its plan (allowed, then record), so two
// workers cannot both take the last slot.

export class RolloutSlots {
  private readonly rolling = new Set<string>();
  /** Waiting for a slot, in the order they asked (a Set keeps insertion order). */
  private readonly waiting = new Set<string>();
  /** Woken for a freed slot and queued, not reconciled yet: their slot is kept for them. */
  private readonly woken = new Set<string>();
  private readonly max: number;
  private readonly wake: (key: string) => void;
  private readonly onCount: (rolling: number) => void;

  constructor(max: number, wake: (key: string) => void, onCount: (rolling: number) => void = () => {}) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`max concurrent rollouts must be a positive integer, not ${max}`);
    this.max = max;
    this.wake = wake;
    this.onCount = onCount;
  }

  /** May `key` start a rollout now? Always, when it holds a slot already. */
  allowed(key: string): boolean {
    if (this.rolling.has(key)) return true;
    const reservedForOthers = this.woken.size - (this.woken.has(key) ? 1 : 0);
    return this.rolling.size + reservedForOthers < this.max;
  }

  /** What the plan of `key` says it does now: rolling (holds a slot), waiting for one, or neither. */
  record(key: string, state: 'rolling' | 'waiting' | undefined): void {
    this.woken.delete(key);
    if (state === 'rolling') { this.rolling.add(key); this.waiting.delete(key); }
    else if (state === 'waiting') { this.rolling.delete(key); this.waiting.add(key); }
    else { this.rolling.delete(key); this.waiting.delete(key); }
    this.onCount(this.rolling.size);
    this.pump();
  }

  /** `key` was deleted. */
  forget(key: string): void { this.record(key, undefined); }

  get inProgress(): number { return this.rolling.size; }
  get waitingCount(): number { return this.waiting.size; }
  has(key: string): boolean { return this.rolling.has(key); }

  /** Wakes as many waiting clusters as there are free slots, first come first served. */
  private pump(): void {
    let free = this.max - this.rolling.size - this.woken.size;
    for (const key of this.waiting) {
      if (free <= 0) break;
      this.waiting.delete(key);
      this.woken.add(key);
      free--;
      this.wake(key);
    }
  }
}
