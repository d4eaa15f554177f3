// The durable queue under POSTOFFICE: an append-only log of segment files with group commit.
// Every record waiting while one fdatasync runs goes out in the next write and fsync, so
// concurrent transactions share fsyncs. A message's 250 waits for the fsync of its record
// (envelope and content together, or envelope plus a blob file fsync'd before it). State
// updates and removals ride along without being awaited: losing one on a crash means a
// retry, never a lost message.
//
// Space comes back by deleting segments. A segment may go (in any order) once nothing in
// it is needed: no live message record, no latest state record of a live message, and no
// removal record whose message still has a record in an older segment file (else the
// removed message would come back at recovery). Segments are unlinked oldest first with a
// directory fsync between passes, so a removal record never outlives what it removes.
// Compaction copies what is still needed out of a segment only when the policy
// (compaction-policy.ts) says it pays; large messages live in blob files and cost only
// their envelope record when compacted.
//
// Recovery quarantines what fails its check: a corrupt record in the middle of a segment
// is copied to POSTOFFICE/quarantine/ and cut out of the segment, and recovery goes on
// with the next valid record.
import { mkdirSync, readdirSync, openSync, fsyncSync, closeSync, statfsSync, existsSync } from 'node:fs';
import { open, readFile, rename, truncate, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeSegment, encodeDone, encodeMessageParts, encodeUpdate } from './records.ts';
import type { BadRegion, MessageMeta } from './records.ts';
import { decideCompaction, defaultCompactionSettings, refill } from './compaction-policy.ts';
import { commitVerdict } from './commit-policy.ts';
import type { Urgency } from './commit-policy.ts';
import type { Budget, CompactionDecision, CompactionSettings, SegmentView } from './compaction-policy.ts';

export interface SpoolOptions {
  /** Rotate the current segment past this size. */
  segmentBytes?: number;
  /** Group commits that may overlap (default 4). */
  commitConcurrency?: number;
  compactIntervalMs?: number;
  compaction?: Partial<CompactionSettings>;
  /** The policy's clock in ms (the compaction budget refills by it); default Date.now. Benchmarks compress time with it. */
  now?: () => number;
  /** Free bytes on the spool's filesystem; default statfs. */
  freeBytes?: () => number;
  /**
   * A batch of nothing but state updates waits up to this long (ms) for company, so a
   * backlog's deferrals cost few small commits (a lost update only means a retry). Default 1000.
   */
  updateDelayMs?: number;
  /** false skips fdatasync: only for the benchmark's fsync-free baseline. */
  fsync?: boolean;
  /** Called for problems that do not stop the spool (a torn tail, a quarantined record, a failed compaction). */
  warn?: (msg: string, details?: Record<string, unknown>) => void;
}

export type WriteReason = 'accept' | 'compaction' | 'metadata';

/** A removal record and the segments that held a record of the message it removes. */
interface Tombstone {
  id: string;
  targets: number[];
  length: number;
  /** Copied forward by compaction (durably): this one is no longer needed. */
  moved?: boolean;
}

interface Segment {
  seq: number;
  file: string;
  fh: FileHandle | undefined;
  size: number;
  /** Bytes of live message records and latest state records in this segment. */
  liveBytes: number;
  /** Bytes of message records written here, and of those still live. */
  contentBytes: number;
  liveContentBytes: number;
  /** Records placed here whose commit has not finished. */
  inflight: number;
  tombs: Tombstone[];
  /** Offset of a failed write: records from here on are not trusted. */
  failedAt?: number;
}

export interface StoredMessage {
  meta: MessageMeta;
  seg: number;
  contentPos: number;
  contentLength: number;
  /** Bytes of the live message record. */
  recordLength: number;
  /** Every segment that was given a record of this message (removal records must outlive them). */
  recordSegs: number[];
  /** Segment of the latest update record, when it is newer than the message record. */
  stateSeg?: number;
  stateLength: number;
  removed?: boolean;
}

interface WriteHooks {
  /** Called when the record's segment is chosen (in enqueue order). */
  placed?: (seq: number) => void;
  /** Called when the record is durable (in enqueue order), before the promise resolves. */
  durable?: (seq: number, offset: number) => void;
}

interface PendingWrite extends WriteHooks {
  /** How long the record may wait for company (see commitVerdict). */
  urgency: Urgency;
  at: number;
  /** The record's bytes, in parts (a message's content is not copied). */
  parts: Buffer[];
  length: number;
  reason: WriteReason;
  resolve: (pos: { seg: number; offset: number }) => void;
  reject: (err: Error) => void;
}

const SEGMENT_RE = /^seg-(\d{12})\.log$/;
const BLOB_DIR = 'blob';

function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(12, '0')}.log`;
}

function blobName(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

const IOV_MAX = 1024;

/** Writes every buffer at `position` with writev (in IOV_MAX groups), resuming after short writes. */
async function writeAll(fh: FileHandle, buffers: Buffer[], total: number, position: number): Promise<void> {
  let pos = position;
  let queue = buffers;
  while (queue.length > 0) {
    const group = queue.slice(0, IOV_MAX);
    queue = queue.slice(group.length);
    const { bytesWritten } = await fh.writev(group, pos);
    pos += bytesWritten;
    const groupBytes = group.reduce((n, b) => n + b.length, 0);
    if (bytesWritten < groupBytes) {
      // short write: the rest of this group, then go on
      const rest = Buffer.concat(group).subarray(bytesWritten);
      let done = 0;
      while (done < rest.length) {
        const r = await fh.write(rest, done, rest.length - done, pos);
        done += r.bytesWritten;
        pos += r.bytesWritten;
      }
    }
  }
  if (pos - position !== total) throw new Error(`spool write: wrote ${pos - position} of ${total} bytes`);
}

/** A large message's content being streamed into its own file (see Spool.createBlob). */
export interface BlobWriter {
  /** Appends; several buffers go out in one writev (no copy to join them). */
  write(chunk: Buffer | Buffer[]): Promise<void>;
  /** fdatasyncs the file and its directory entry; the blob is then ready for addBlob. */
  finish(): Promise<{ length: number; crc: number }>;
  /** Deletes the partial file (a refused or failed transaction). */
  abort(): Promise<void>;
}

export class Spool {
  readonly dir: string;
  readonly quarantineDir: string;
  readonly blobDir: string;
  readonly messages = new Map<string, StoredMessage>();
  private segments: Segment[] = [];
  private bySeq = new Map<number, Segment>();
  private current!: Segment;
  private pending: PendingWrite[] = [];
  private forming = false;
  private flights = 0;
  private readonly maxFlights: number;
  private writeTail: Promise<void> = Promise.resolve();
  private resolveTail: Promise<void> = Promise.resolve();
  private compacting = false;
  private quarantinedBlobs = new Set<string>();
  /** The next batch starts a new segment (compaction output gets segments of its own). */
  private rotateAsked = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly segmentBytes: number;
  private settings: CompactionSettings;
  private readonly now: () => number;
  private readonly freeBytes: () => number;
  private readonly fsync: boolean;
  private readonly updateDelayMs: number;
  private lazyTimer: NodeJS.Timeout | null = null;
  private flushing = false;
  private budget: Budget;
  private readonly warn: NonNullable<SpoolOptions['warn']>;
  /** Counters for the benchmark note and metrics. */
  stats = {
    fsyncs: 0,
    records: 0,
    /** Bad stretches moved to quarantine (corrupt records, corrupt tails, corrupt blobs). */
    quarantined: 0,
    /** Incomplete last records cut off at recovery (a crash mid-write; never acknowledged). */
    tornTails: 0,
    compactions: 0,
    bytesWritten: { accept: 0, compaction: 0, metadata: 0 } as Record<WriteReason, number>,
    lastDecision: undefined as CompactionDecision | undefined,
  };
  /** Called after every group commit with the number of records it made durable. */
  onCommit: (records: number, seconds: number) => void = () => {};

  private constructor(postOffice: string, opts: SpoolOptions) {
    this.dir = path.join(postOffice, 'queue');
    this.quarantineDir = path.join(postOffice, 'quarantine');
    this.blobDir = path.join(this.dir, BLOB_DIR);
    this.segmentBytes = opts.segmentBytes ?? 32 * 1024 * 1024;
    this.maxFlights = opts.commitConcurrency ?? 4;
    this.settings = { ...defaultCompactionSettings, minReclaimBytes: this.segmentBytes, ...opts.compaction };
    this.now = opts.now ?? Date.now;
    this.freeBytes = opts.freeBytes ?? (() => {
      const s = statfsSync(this.dir);
      return s.bavail * s.bsize;
    });
    this.fsync = opts.fsync ?? true;
    this.updateDelayMs = opts.updateDelayMs ?? 1000;
    this.budget = { tokens: this.settings.budgetBytesPerHour, at: this.now() };
    this.warn = opts.warn ?? (() => {});
  }

  /** Opens (creating) the spool and recovers every committed message. */
  static async open(postOffice: string, opts: SpoolOptions = {}): Promise<Spool> {
    const spool = new Spool(postOffice, opts);
    mkdirSync(spool.blobDir, { recursive: true });
    if (opts.compaction?.lowSpaceBytes === undefined && !opts.freeBytes) {
      // short of space: below a tenth of the filesystem (a fixed mark would be most of a small volume)
      const fs = statfsSync(spool.dir);
      spool.settings.lowSpaceBytes = Math.max(2 * spool.segmentBytes, Math.floor(fs.blocks * fs.bsize * 0.1));
    }
    await spool.recover();
    const interval = opts.compactIntervalMs ?? 1000;
    spool.timer = setInterval(() => { void spool.maintain(); }, interval);
    spool.timer.unref();
    return spool;
  }

  // ---- recovery ----

  private async recover(): Promise<void> {
    const seqs: number[] = [];
    for (const n of readdirSync(this.dir)) {
      const m = SEGMENT_RE.exec(n);
      if (m) seqs.push(Number(m[1]));
      else if (n !== BLOB_DIR) await unlink(path.join(this.dir, n)).catch(() => {}); // leftovers of an interrupted create
    }
    seqs.sort((a, b) => a - b);
    for (const seq of seqs) {
      const file = path.join(this.dir, segmentName(seq));
      const seg: Segment = { seq, file, fh: undefined, size: 0, liveBytes: 0, contentBytes: 0, liveContentBytes: 0, inflight: 0, tombs: [] };
      this.segments.push(seg);
      this.bySeq.set(seq, seg);
      let buf: Buffer = await readFile(file);
      let decoded = decodeSegment(buf);
      if (decoded.bad.length > 0) {
        buf = await this.cutOut(file, buf, decoded.bad);
        decoded = decodeSegment(buf);
      }
      const { records, validLength, tail } = decoded;
      if (tail) {
        if (tail.torn) {
          // an incomplete last record from a crash: nothing in it was acknowledged
          this.stats.tornTails++;
          this.warn('spool segment has an incomplete tail, truncating', { file, validLength, size: buf.length, error: tail.reason });
        } else {
          await this.quarantine(file, buf, tail);
        }
        await truncate(file, validLength);
      }
      seg.size = validLength;
      for (const r of records) {
        if (r.type === 'message') {
          const prev = this.messages.get(r.meta.id);
          if (prev) this.forget(prev);
          const m: StoredMessage = { meta: r.meta, seg: seq, contentPos: r.contentOffset, contentLength: r.contentLength, recordLength: r.length, recordSegs: [...(prev?.recordSegs ?? []), seq], stateLength: 0 };
          this.messages.set(r.meta.id, m);
          this.placeContent(seq, r.length);
        } else if (r.type === 'update') {
          const m = this.messages.get(r.update.id);
          if (m) {
            m.meta.rcpts = r.update.rcpts;
            m.meta.attempts = r.update.attempts;
            m.meta.nextAttempt = r.update.nextAttempt;
            if (r.update.held !== undefined) m.meta.held = r.update.held;
            this.setState(m, seq, r.length);
          }
        } else {
          const m = this.messages.get(r.id);
          seg.tombs.push({ id: r.id, targets: m ? [...m.recordSegs] : [], length: r.length });
          if (m) { this.forget(m); this.messages.delete(r.id); }
        }
      }
    }
    await this.dropOrphanBlobs();
    // a fresh segment for new writes: never append after a possibly torn tail
    await this.rotate(seqs.length ? seqs[seqs.length - 1] + 1 : 1);
    await this.dropDeadSegments();
  }

  /** Copies bad stretches to quarantine, then replaces the segment by its valid records (same name). */
  private async cutOut(file: string, buf: Buffer, bad: BadRegion[]): Promise<Buffer> {
    for (const b of bad) await this.quarantine(file, buf, b);
    const keep: Buffer[] = [];
    let pos = 0;
    for (const b of bad) {
      keep.push(buf.subarray(pos, b.offset));
      pos = b.offset + b.length;
    }
    keep.push(buf.subarray(pos));
    const clean = Buffer.concat(keep);
    const tmp = `${file}.clean`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(clean);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    fsyncDir(this.dir);
    return clean;
  }

  private async quarantine(file: string, buf: Buffer, region: BadRegion): Promise<void> {
    mkdirSync(this.quarantineDir, { recursive: true });
    const target = path.join(this.quarantineDir, `${path.basename(file)}@${region.offset}+${region.length}.bad`);
    const fh = await open(target, 'w');
    try {
      await fh.writeFile(buf.subarray(region.offset, region.offset + region.length));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    fsyncDir(this.quarantineDir);
    this.stats.quarantined++;
    this.warn('spool record failed its check: quarantined, recovery goes on with the next valid record', { file, offset: region.offset, length: region.length, reason: region.reason, quarantine: target });
  }

  private async dropOrphanBlobs(): Promise<void> {
    const wanted = new Set<string>();
    for (const m of this.messages.values()) {
      if (!m.meta.blob) continue;
      const name = blobName(m.meta.id);
      wanted.add(name);
      if (!existsSync(path.join(this.blobDir, name))) this.warn('spooled message has no blob file', { id: m.meta.id });
    }
    // a blob without a committed record was never acknowledged (or its message is done)
    for (const n of readdirSync(this.blobDir)) if (!wanted.has(n)) await unlink(path.join(this.blobDir, n)).catch(() => {});
  }

  // ---- live accounting ----

  private addLive(seq: number, delta: number): void {
    const s = this.bySeq.get(seq);
    if (s) s.liveBytes += delta;
  }

  /** A message record became live in `seq` (written, copied, or found at recovery). */
  private placeContent(seq: number, length: number): void {
    const s = this.bySeq.get(seq);
    if (!s) return;
    s.liveBytes += length;
    s.contentBytes += length;
    s.liveContentBytes += length;
  }

  private setState(m: StoredMessage, seq: number, length: number): void {
    if (m.stateSeg !== undefined) this.addLive(m.stateSeg, -m.stateLength);
    m.stateSeg = seq;
    m.stateLength = length;
    this.addLive(seq, length);
  }

  /** Takes a message's records out of the live counts. */
  private forget(m: StoredMessage): void {
    this.addLive(m.seg, -m.recordLength);
    const s = this.bySeq.get(m.seg);
    if (s) s.liveContentBytes -= m.recordLength;
    if (m.stateSeg !== undefined) this.addLive(m.stateSeg, -m.stateLength);
    m.stateSeg = undefined;
    m.stateLength = 0;
  }

  private neededTombBytes(s: Segment): number {
    let n = 0;
    for (const t of s.tombs) if (!t.moved && t.targets.some((x) => x !== s.seq && this.bySeq.has(x))) n += t.length;
    return n;
  }

  // ---- writing ----

  private async rotate(seq: number): Promise<void> {
    const file = path.join(this.dir, segmentName(seq));
    const fh = await open(file, 'wx+');
    fsyncDir(this.dir); // the new directory entry must survive a crash too
    const seg: Segment = { seq, file, fh, size: 0, liveBytes: 0, contentBytes: 0, liveContentBytes: 0, inflight: 0, tombs: [] };
    this.segments.push(seg);
    this.bySeq.set(seq, seg);
    this.current = seg;
  }

  // Segments found at recovery are opened lazily.
  private async handleOf(seg: Segment): Promise<FileHandle> {
    if (!seg.fh) seg.fh = await open(seg.file, 'r');
    return seg.fh;
  }

  private enqueue(parts: Buffer[], length: number, reason: WriteReason, hooks: WriteHooks = {}, urgency: Urgency = 'now'): Promise<{ seg: number; offset: number }> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ parts, length, reason, ...hooks, urgency, at: Date.now(), resolve, reject });
      void this.pump();
    });
  }

  /**
   * Forms batches of everything pending and commits each with one write and one
   * fdatasync. Up to `maxFlights` commits overlap (a record never waits for a whole
   * fsync that started before it arrived plus its own); writes go out in order, and
   * batches are acknowledged strictly in order, so an acknowledged record never sits
   * behind one that might be lost.
   */
  private async pump(): Promise<void> {
    if (this.forming) return;
    this.forming = true;
    let riding = false;
    try {
      while (this.pending.length > 0 && this.flights < this.maxFlights) {
        const verdict = commitVerdict(this.pending, this.flights, this.flushing, Date.now(), this.updateDelayMs);
        if (verdict.wait === 'commit') { riding = true; break; } // the running commit's end pumps again
        if (verdict.wait === 'timer') {
          this.lazyTimer ??= setTimeout(() => { this.lazyTimer = null; void this.pump(); }, verdict.ms);
          break;
        }
        const rotateAsked = this.rotateAsked;
        this.rotateAsked = false;
        if (this.current.size >= this.segmentBytes || this.current.failedAt !== undefined || (rotateAsked && this.current.size > 0)) await this.rotate(this.current.seq + 1);
        const batch = this.pending.splice(0);
        const seg = this.current;
        const fh = seg.fh!;
        const start = seg.size;
        const buffers = batch.flatMap((p) => p.parts);
        const total = batch.reduce((n, p) => n + p.length, 0);
        seg.size += total; // this range is the batch's from now on
        seg.inflight += batch.length;
        for (const p of batch) p.placed?.(seg.seq);
        this.flights++;
        const t0 = process.hrtime.bigint();
        const written = this.writeTail.then(() => writeAll(fh, buffers, total, start));
        this.writeTail = written.then(() => {}, () => {});
        const synced = this.fsync ? written.then(() => fh.datasync()) : written;
        synced.catch(() => {}); // handled in order below
        this.resolveTail = this.resolveTail.then(async () => {
          let failure: Error | null = null;
          try { await synced; } catch (err) { failure = err as Error; }
          if (!failure && seg.failedAt !== undefined && start >= seg.failedAt) failure = new Error('an earlier write to this spool segment failed');
          seg.inflight -= batch.length;
          if (failure) {
            // the segment may hold a partial record from here on: nothing after it counts
            if (seg.failedAt === undefined || start < seg.failedAt) seg.failedAt = start;
            for (const p of batch) p.reject(failure);
          } else {
            this.stats.fsyncs++;
            this.stats.records += batch.length;
            this.onCommit(batch.length, Number(process.hrtime.bigint() - t0) / 1e9);
            let off = start;
            for (const p of batch) {
              this.stats.bytesWritten[p.reason] += p.length;
              p.durable?.(seg.seq, off);
              p.resolve({ seg: seg.seq, offset: off });
              off += p.length;
            }
          }
          this.flights--;
          void this.pump();
        });
      }
    } catch (err) {
      // rotation failed: everything pending fails now, the next record tries again
      for (const p of this.pending.splice(0)) p.reject(err as Error);
    } finally {
      this.forming = false;
    }
    // a lazy timer that fired while this pass was busy found it forming: go on now
    if (this.pending.length > 0 && this.flights < this.maxFlights && !this.lazyTimer && !riding) setImmediate(() => { void this.pump(); });
  }

  /** Stores a new message durably; resolves once envelope and content are fsync'd. */
  async add(meta: MessageMeta, content: Buffer): Promise<void> {
    const { parts, length, contentOffset } = encodeMessageParts(meta, content);
    const m: StoredMessage = { meta, seg: 0, contentPos: 0, contentLength: content.length, recordLength: length, recordSegs: [], stateLength: 0 };
    await this.enqueue(parts, length, 'accept', {
      placed: (seq) => m.recordSegs.push(seq),
      durable: (seq, offset) => {
        m.seg = seq;
        m.contentPos = offset + contentOffset;
        this.messages.set(meta.id, m);
        this.placeContent(seq, length);
      },
    });
  }

  /**
   * A file for one large message's content, written as it arrives (memory per session stays
   * bounded). After finish(), addBlob() commits the envelope record that refers to it.
   */
  async createBlob(id: string): Promise<BlobWriter> {
    const file = path.join(this.blobDir, blobName(id));
    const fh = await open(file, 'w');
    let length = 0;
    let crc = 0;
    let closed = false;
    const close = async () => { if (!closed) { closed = true; await fh.close(); } };
    return {
      write: async (chunk) => {
        const parts = Array.isArray(chunk) ? chunk : [chunk];
        const total = parts.reduce((n, c) => n + c.length, 0);
        await writeAll(fh, parts, total, length);
        for (const c of parts) crc = crc32(c, crc);
        length += total;
        this.stats.bytesWritten.accept += total;
      },
      finish: async () => {
        try {
          if (this.fsync) await fh.datasync();
        } finally {
          await close();
        }
        if (this.fsync) fsyncDir(this.blobDir);
        return { length, crc };
      },
      abort: async () => {
        await close().catch(() => {});
        await unlink(file).catch(() => {});
      },
    };
  }

  /** Commits the envelope of a message whose content is a finished blob; resolves once durable. */
  async addBlob(meta: MessageMeta, blob: { length: number; crc: number }): Promise<void> {
    await this.add({ ...meta, size: blob.length, blob }, Buffer.alloc(0));
  }

  /**
   * Records the message's current recipient states. Resolves once the record is queued, not
   * when it is durable: it may wait up to updateDelayMs for company, and a lost state
   * update only means a retry, so a delivery attempt never waits for it.
   */
  update(id: string): Promise<void> {
    void this.writeUpdate(id, true);
    return Promise.resolve();
  }

  /** The update record; resolves once durable (or failed, with a warning). */
  private writeUpdate(id: string, lazy: boolean): Promise<void> {
    const m = this.messages.get(id);
    if (!m) return Promise.resolve();
    return this.enqueueUpdate(m, lazy).then(() => {}, (err) => {
      this.warn('spool update failed', { id, err: (err as Error).message });
    });
  }

  /** Resolves once every record queued so far is durable (or failed); waiting updates go out now. */
  async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.forming || this.flights > 0 || this.pending.length > 0) {
        void this.pump();
        await new Promise((r) => setTimeout(r, 2));
      }
    } finally {
      this.flushing = this.closed;
    }
  }

  /**
   * Records the message's current state like update(), but never lazily: resolves only once
   * the record is durable and rejects when it cannot be written. An admin hold (issue 14) is
   * answered only once it survives a restart.
   */
  async commitUpdate(id: string): Promise<void> {
    const m = this.messages.get(id);
    if (!m) return;
    await this.enqueueUpdate(m, false);
  }

  /** One update record with the message's current state (recipients, attempts, hold). */
  private enqueueUpdate(m: StoredMessage, lazy: boolean): Promise<{ seg: number; offset: number }> {
    const { id, rcpts, attempts, nextAttempt, held } = m.meta;
    const rec = encodeUpdate({ id, rcpts, attempts, nextAttempt, ...(held !== undefined ? { held } : {}) });
    return this.enqueue([rec], rec.length, 'metadata', {
      durable: (seq) => { if (!m.removed) this.setState(m, seq, rec.length); },
    }, lazy ? 'lazy' : 'now');
  }

  /** Removes a message whose recipients are all done. */
  remove(id: string): Promise<void> {
    const m = this.messages.get(id);
    if (!m) return Promise.resolve();
    this.messages.delete(id);
    m.removed = true;
    this.forget(m);
    const rec = encodeDone(id);
    // rides with the next commit (no fdatasync of its own while one runs): no reply waits for it
    return this.enqueue([rec], rec.length, 'metadata', {
      placed: (seq) => { this.bySeq.get(seq)?.tombs.push({ id, targets: [...m.recordSegs], length: rec.length }); },
    }, 'ride').then(async () => {
      // the blob goes only once its removal is durable (else a crash would bring back a message without content)
      if (m.meta.blob) await unlink(path.join(this.blobDir, blobName(id))).catch(() => {});
    }, (err) => {
      this.warn('spool remove failed', { id, err: (err as Error).message });
    });
  }

  async readContent(id: string): Promise<Buffer> {
    const m = this.messages.get(id);
    if (!m) throw new Error(`message ${id} is not in the queue`);
    if (m.meta.blob) return this.readBlob(m);
    const seg = this.bySeq.get(m.seg);
    if (!seg) throw new Error(`segment ${m.seg} of message ${id} is gone`);
    const fh = await this.handleOf(seg);
    const buf = Buffer.alloc(m.contentLength);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, m.contentPos + got);
      if (bytesRead === 0) throw new Error(`message ${id}: segment ${m.seg} is shorter than expected`);
      got += bytesRead;
    }
    return buf;
  }

  /**
   * The blob file of a blob-backed message, for the delivery thread to stream (read-only).
   * The file stays until the message's removal is durable (remove()), and the queue removes
   * no message while an attempt for it is in flight; compaction never touches blob files.
   */
  blobFile(id: string): { path: string; length: number; crc: number } | undefined {
    const blob = this.messages.get(id)?.meta.blob;
    return blob ? { path: path.join(this.blobDir, blobName(id)), length: blob.length, crc: blob.crc } : undefined;
  }

  private async readBlob(m: StoredMessage): Promise<Buffer> {
    const file = path.join(this.blobDir, blobName(m.meta.id));
    const buf = await readFile(file);
    const want = m.meta.blob!;
    if (buf.length !== want.length || crc32(buf) !== want.crc) {
      if (!this.quarantinedBlobs.has(m.meta.id)) {
        this.quarantinedBlobs.add(m.meta.id);
        await this.quarantine(file, buf, { offset: 0, length: buf.length, reason: `blob check failed (${buf.length} of ${want.length} bytes)` }).catch(() => {});
      }
      throw new Error(`message ${m.meta.id}: blob file fails its length/CRC check (quarantined)`);
    }
    return buf;
  }

  // ---- space ----

  /** What a compaction of each segment would copy (for the policy). */
  segmentViews(): SegmentView[] {
    return this.segments.map((s) => ({
      seq: s.seq, size: s.size, liveBytes: s.liveBytes + this.neededTombBytes(s), contentBytes: s.contentBytes, liveContentBytes: s.liveContentBytes,
      current: s === this.current || s.inflight > 0,
    }));
  }

  /**
   * Deletes segments nothing needs; copies live records out of sparse segments when the
   * policy says it pays. The copies go into a segment of their own (rotated before and
   * after), so long-held mail sits together, fully live, and is not copied again with
   * every new segment of passing traffic (generational, as in log-structured stores).
   */
  async maintain(): Promise<void> {
    if (this.closed || this.compacting) return;
    this.compacting = true;
    try {
      await this.dropDeadSegments();
      this.budget = refill(this.budget, this.now(), this.settings);
      const free = this.freeBytes();
      const done = new Set<number>();
      for (let i = 0; i < 8; i++) {
        // a run starts only when it frees enough (minReclaimBytes); once started it takes every sparse segment it may (up to 8)
        const settings = done.size === 0 ? this.settings : { ...this.settings, minReclaimBytes: 0 };
        const decision = decideCompaction(this.segmentViews().filter((v) => !done.has(v.seq)), this.budget, free, settings);
        this.stats.lastDecision = decision;
        if (!decision.compact) break;
        if (done.size === 0) this.rotateAsked = true;
        done.add(decision.seq);
        const copied = await this.compact(this.bySeq.get(decision.seq)!);
        this.budget = { ...this.budget, tokens: this.budget.tokens - copied };
        this.stats.compactions++;
      }
      if (done.size > 0) {
        this.rotateAsked = true;
        await this.dropDeadSegments();
      }
    } catch (err) {
      this.warn('spool maintenance failed', { err: (err as Error).message });
    } finally {
      this.compacting = false;
    }
  }

  /** Copies what is still needed out of `seg` (message records, latest states, removal records); returns bytes written. */
  private async compact(seg: Segment): Promise<number> {
    const writes: Array<Promise<unknown>> = [];
    let bytes = 0;
    for (const m of [...this.messages.values()]) {
      if (m.seg === seg.seq) {
        const content = m.meta.blob ? Buffer.alloc(0) : await this.readContent(m.meta.id);
        if (m.removed) continue; // removed meanwhile
        const { parts, length, contentOffset } = encodeMessageParts(m.meta, content);
        bytes += length;
        writes.push(this.enqueue(parts, length, 'compaction', {
          placed: (seq) => m.recordSegs.push(seq),
          durable: (seq, offset) => {
            if (m.removed) return;
            this.forget(m); // the copy carries the current state too
            m.seg = seq;
            m.contentPos = offset + contentOffset;
            m.recordLength = length;
            this.placeContent(seq, length);
          },
        }));
      } else if (m.stateSeg === seg.seq) {
        bytes += m.stateLength;
        writes.push(this.writeUpdate(m.meta.id, false));
      }
    }
    for (const t of seg.tombs) {
      const targets = t.targets.filter((x) => x !== seg.seq && this.bySeq.has(x));
      if (t.moved || targets.length === 0) continue;
      const rec = encodeDone(t.id);
      bytes += rec.length;
      writes.push(this.enqueue([rec], rec.length, 'metadata', {
        placed: (seq) => { this.bySeq.get(seq)?.tombs.push({ id: t.id, targets, length: rec.length }); },
        durable: () => { t.moved = true; },
      }));
    }
    await Promise.all(writes);
    return bytes;
  }

  /**
   * Unlinks every segment nothing needs, oldest first; a directory fsync after each pass
   * makes a removed message's records go before its removal record can.
   */
  private async dropDeadSegments(): Promise<void> {
    for (;;) {
      const dead: Segment[] = [];
      for (const s of this.segments) {
        if (s === this.current || s.liveBytes > 0 || s.inflight > 0) continue;
        // a removal record is needed while an older segment still holds its message
        if (s.tombs.some((t) => !t.moved && t.targets.some((x) => x !== s.seq && this.bySeq.has(x) && !dead.some((d) => d.seq === x)))) continue;
        dead.push(s);
      }
      if (dead.length === 0) return;
      // targets (older) first; tombstone holders only in a later pass, after a directory fsync
      const pass = dead.filter((s) => !s.tombs.some((t) => !t.moved && t.targets.some((x) => x !== s.seq && this.bySeq.has(x))));
      for (const s of pass) {
        await unlink(s.file).catch(() => {});
        this.bySeq.delete(s.seq);
        this.segments = this.segments.filter((x) => x !== s);
        // readers that started before the unlink finish on the open handle
        const fh = s.fh;
        if (fh) setTimeout(() => { void fh.close().catch(() => {}); }, 30_000).unref();
      }
      fsyncDir(this.dir);
      if (pass.length === 0) return;
    }
  }

  /** Waits for pending writes, then closes every file. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.flushing = true;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    while (this.forming || this.flights > 0 || this.pending.length > 0) {
      void this.pump();
      await new Promise((r) => setTimeout(r, 5));
    }
    this.closed = true;
    while (this.compacting) await new Promise((r) => setTimeout(r, 5));
    for (const s of this.segments) if (s.fh) await s.fh.close().catch(() => {});
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Bytes of live messages: their records plus their blob files. */
  get liveBytes(): number {
    let n = 0;
    for (const m of this.messages.values()) n += m.recordLength + (m.meta.blob?.length ?? 0);
    return n;
  }
}
