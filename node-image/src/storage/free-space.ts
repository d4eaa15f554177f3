// The free-space reserve of the spool filesystem (PARAM queue-minfree, as Postfix's
// queue_minfree): below it a new transaction gets 452 4.3.1, so the disk never fills with
// half-received messages and acknowledged mail keeps room for its state updates and DSNs.
import { statfs } from 'node:fs/promises';

/** Bytes an unprivileged writer may still use (statfs bavail × bsize). */
export function freeBytes(stats: { bavail: number | bigint; bsize: number | bigint }): number {
  return Number(stats.bavail) * Number(stats.bsize);
}

/**
 * Why the spool has no room for a new transaction, or null when it has (pure). `need`: the
 * size the client declared (MAIL FROM SIZE=), which must fit above the reserve too.
 */
export function storageVerdict(free: number, minFree: number, need = 0): string | null {
  if (minFree <= 0 || free - need >= minFree) return null;
  if (need > 0 && free >= minFree) return `${free} bytes free on the spool filesystem: a ${need}-byte message would leave less than queue-minfree ${minFree}`;
  return `${free} bytes free on the spool filesystem, below queue-minfree ${minFree}`;
}

/** How far above the reserve a reading must be to be reused, and for how long (see readingReusable). */
export const ROOMY_BYTES = 256 * 1024 * 1024;
export const ROOMY_REUSE_MS = 100;

/**
 * Whether a free-space reading `ageMs` old may answer again (pure): while it was far above
 * the reserve, for a moment (the node cannot write ROOMY_BYTES in ROOMY_REUSE_MS), so a
 * busy node does not send two statfs per transaction through the thread pool; near the
 * reserve, never.
 */
export function readingReusable(ageMs: number, free: number, minFree: number): boolean {
  return ageMs < ROOMY_REUSE_MS && free - minFree >= ROOMY_BYTES;
}

/**
 * statfs of the spool directory, shared by concurrent callers, reused briefly while far
 * above the reserve (readingReusable), and cached for `cacheMs` (default none). A statfs
 * that fails says nothing: room.
 */
export class FreeSpace {
  readonly #dir: string;
  readonly #cacheMs: number;
  #minFree: number;
  #at = 0;
  #free = Infinity;
  #pending: Promise<number> | null = null;

  constructor(dir: string, minFree: number, cacheMs = 0) {
    this.#dir = dir;
    this.#minFree = minFree;
    this.#cacheMs = cacheMs;
  }

  set minFree(bytes: number) { this.#minFree = bytes; }
  get minFree(): number { return this.#minFree; }

  /** Free bytes now (cached briefly). */
  async free(): Promise<number> {
    const age = Date.now() - this.#at;
    if (age < this.#cacheMs || readingReusable(age, this.#free, this.#minFree)) return this.#free;
    this.#pending ??= statfs(this.#dir).then(
      (s) => { this.#free = freeBytes(s); this.#at = Date.now(); return this.#free; },
      () => Infinity,
    ).finally(() => { this.#pending = null; });
    return this.#pending;
  }

  /** A reason when the spool is below its reserve (or `need` more bytes would take it there), else null. */
  async check(need = 0): Promise<string | null> {
    return storageVerdict(await this.free(), this.#minFree, need);
  }
}
