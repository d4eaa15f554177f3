// The durable queue under POSTOFFICE: an append-only log of segment files with group commit.
// Every record waiting while one fdatasync runs goes out in the next write and fsync, so
// concurrent transactions share fsyncs. A message's 250 waits for the fsync of its record
// (envelope and content together). State updates and removals ride along without being
// awaited: losing one on a crash means a retry, never a lost message.
// Segments are deleted oldest first once nothing in them is live, so a removal record can
// never outlive the message it removes; long-lived messages in the oldest segment are
// copied forward (compaction) so that one deferred message does not pin old segments.
import { mkdirSync, readdirSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { open, readFile, truncate, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { decodeSegment, encodeDone, encodeMessageParts, encodeUpdate } from './records.ts';
import type { MessageMeta } from './records.ts';

export interface SpoolOptions {
  /** Rotate the current segment past this size. */
  segmentBytes?: number;
  /** Group commits that may overlap (default 4). */
  commitConcurrency?: number;
  /** Copy live messages out of the oldest segment once it is this old. */
  compactAfterMs?: number;
  compactIntervalMs?: number;
  /** Called for problems that do not stop the spool (a torn tail found at recovery, a failed compaction). */
  warn?: (msg: string, details?: Record<string, unknown>) => void;
}

interface Segment {
  seq: number;
  file: string;
  fh: FileHandle;
  size: number;
  createdAt: number;
  live: number;
  /** Offset of a failed write: records from here on are not trusted. */
  failedAt?: number;
}

export interface StoredMessage {
  meta: MessageMeta;
  seg: number;
  contentPos: number;
  contentLength: number;
}

interface PendingWrite {
  /** The record's bytes, in parts (a message's content is not copied). */
  parts: Buffer[];
  length: number;
  resolve: (pos: { seg: number; offset: number }) => void;
  reject: (err: Error) => void;
}

const SEGMENT_RE = /^seg-(\d{12})\.log$/;

function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(12, '0')}.log`;
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
    let { bytesWritten } = await fh.writev(group, pos);
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
      bytesWritten = groupBytes;
    }
  }
  if (pos - position !== total) throw new Error(`spool write: wrote ${pos - position} of ${total} bytes`);
}

export class Spool {
  readonly dir: string;
  readonly messages = new Map<string, StoredMessage>();
  private segments: Segment[] = [];
  private current!: Segment;
  private pending: PendingWrite[] = [];
  private forming = false;
  private flights = 0;
  private readonly maxFlights: number;
  private writeTail: Promise<void> = Promise.resolve();
  private resolveTail: Promise<void> = Promise.resolve();
  private compacting = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly segmentBytes: number;
  private readonly compactAfterMs: number;
  private readonly warn: NonNullable<SpoolOptions['warn']>;
  /** fsyncs done and records written, for the benchmark note and metrics. */
  stats = { fsyncs: 0, records: 0 };
  /** Called after every group commit with the number of records it made durable. */
  onCommit: (records: number, seconds: number) => void = () => {};

  private constructor(dir: string, opts: SpoolOptions) {
    this.dir = dir;
    this.segmentBytes = opts.segmentBytes ?? 32 * 1024 * 1024;
    this.maxFlights = opts.commitConcurrency ?? 4;
    this.compactAfterMs = opts.compactAfterMs ?? 60_000;
    this.warn = opts.warn ?? (() => {});
  }

  /** Opens (creating) the spool and recovers every committed message. */
  static async open(postOffice: string, opts: SpoolOptions = {}): Promise<Spool> {
    const dir = path.join(postOffice, 'queue');
    mkdirSync(dir, { recursive: true });
    const spool = new Spool(dir, opts);
    await spool.recover();
    const interval = opts.compactIntervalMs ?? 1000;
    spool.timer = setInterval(() => { void spool.maintain(); }, interval);
    spool.timer.unref();
    return spool;
  }

  private async recover(): Promise<void> {
    const names = readdirSync(this.dir);
    const seqs: number[] = [];
    for (const n of names) {
      const m = SEGMENT_RE.exec(n);
      if (m) seqs.push(Number(m[1]));
      else await unlink(path.join(this.dir, n)).catch(() => {}); // leftovers of an interrupted create
    }
    seqs.sort((a, b) => a - b);
    for (const seq of seqs) {
      const file = path.join(this.dir, segmentName(seq));
      const buf = await readFile(file);
      const { records, validLength, error } = decodeSegment(buf);
      if (error) {
        // an uncommitted tail from a crash: nothing in it was acknowledged
        this.warn('spool segment has an incomplete tail, truncating', { file, validLength, size: buf.length, error });
        await truncate(file, validLength);
      }
      for (const r of records) {
        if (r.type === 'message') {
          const prev = this.messages.get(r.meta.id);
          if (prev) this.segLive(prev.seg, -1);
          this.messages.set(r.meta.id, { meta: r.meta, seg: seq, contentPos: r.contentOffset, contentLength: r.contentLength });
          this.segLive(seq, +1, file, validLength);
        } else if (r.type === 'update') {
          const m = this.messages.get(r.update.id);
          if (m) {
            m.meta.rcpts = r.update.rcpts;
            m.meta.attempts = r.update.attempts;
            m.meta.nextAttempt = r.update.nextAttempt;
            if (r.update.held !== undefined) m.meta.held = r.update.held;
          }
        } else {
          const m = this.messages.get(r.id);
          if (m) { this.segLive(m.seg, -1); this.messages.delete(r.id); }
        }
      }
      if (!this.segments.some((s) => s.seq === seq)) {
        this.segments.push({ seq, file, fh: await open(file, 'r'), size: validLength, createdAt: Date.now(), live: 0 });
      }
    }
    this.segments.sort((a, b) => a.seq - b.seq);
    // a fresh segment for new writes: never append after a possibly torn tail
    await this.rotate(seqs.length ? seqs[seqs.length - 1] + 1 : 1);
    await this.dropDeadSegments();
  }

  private segLive(seq: number, delta: number, file?: string, size?: number): void {
    let s = this.segments.find((x) => x.seq === seq);
    if (!s && file !== undefined) {
      // recovery: the handle is opened right after the segment's records are applied
      s = { seq, file, fh: undefined as unknown as FileHandle, size: size ?? 0, createdAt: Date.now(), live: 0 };
      this.segments.push(s);
    }
    if (s) s.live += delta;
  }

  private async rotate(seq: number): Promise<void> {
    const file = path.join(this.dir, segmentName(seq));
    const fh = await open(file, 'wx+');
    fsyncDir(this.dir); // the new directory entry must survive a crash too
    const seg: Segment = { seq, file, fh, size: 0, createdAt: Date.now(), live: 0 };
    this.segments.push(seg);
    this.current = seg;
  }

  // Segments opened at recovery got a placeholder handle; open the real one lazily.
  private async handleOf(seg: Segment): Promise<FileHandle> {
    if (!seg.fh) seg.fh = await open(seg.file, 'r');
    return seg.fh;
  }

  private enqueue(parts: Buffer[], length: number): Promise<{ seg: number; offset: number }> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ parts, length, resolve, reject });
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
    try {
      while (this.pending.length > 0 && this.flights < this.maxFlights) {
        if (this.current.size >= this.segmentBytes || this.current.failedAt !== undefined) await this.rotate(this.current.seq + 1);
        const batch = this.pending.splice(0);
        const seg = this.current;
        const start = seg.size;
        const buffers = batch.flatMap((p) => p.parts);
        const total = batch.reduce((n, p) => n + p.length, 0);
        seg.size += total; // this range is the batch's from now on
        this.flights++;
        const t0 = process.hrtime.bigint();
        const written = this.writeTail.then(() => writeAll(seg.fh, buffers, total, start));
        this.writeTail = written.then(() => {}, () => {});
        const synced = written.then(() => seg.fh.datasync());
        synced.catch(() => {}); // handled in order below
        this.resolveTail = this.resolveTail.then(async () => {
          let failure: Error | null = null;
          try { await synced; } catch (err) { failure = err as Error; }
          if (!failure && seg.failedAt !== undefined && start >= seg.failedAt) failure = new Error('an earlier write to this spool segment failed');
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
  }

  /** Stores a new message durably; resolves once envelope and content are fsync'd. */
  async add(meta: MessageMeta, content: Buffer): Promise<void> {
    const { parts, length, contentOffset } = encodeMessageParts(meta, content);
    const pos = await this.enqueue(parts, length);
    this.messages.set(meta.id, { meta, seg: pos.seg, contentPos: pos.offset + contentOffset, contentLength: content.length });
    this.segLive(pos.seg, +1);
  }

  /** Records the message's current recipient states (not awaited by callers that can afford a retry). */
  update(id: string): Promise<void> {
    const m = this.messages.get(id);
    if (!m) return Promise.resolve();
    const { rcpts, attempts, nextAttempt, held } = m.meta;
    const rec = encodeUpdate({ id, rcpts, attempts, nextAttempt, ...(held !== undefined ? { held } : {}) });
    return this.enqueue([rec], rec.length).then(() => {}, (err) => {
      this.warn('spool update failed', { id, err: (err as Error).message });
    });
  }

  /**
   * Records the message's current state like update(), but resolves only once the record is
   * durable and rejects when it cannot be written: an admin hold (issue 14) is reported only
   * once it survives a restart.
   */
  async commitUpdate(id: string): Promise<void> {
    const m = this.messages.get(id);
    if (!m) return;
    const { rcpts, attempts, nextAttempt, held } = m.meta;
    const rec = encodeUpdate({ id, rcpts, attempts, nextAttempt, ...(held !== undefined ? { held } : {}) });
    await this.enqueue([rec], rec.length);
  }

  /** Removes a message whose recipients are all done. */
  remove(id: string): Promise<void> {
    const m = this.messages.get(id);
    if (!m) return Promise.resolve();
    this.messages.delete(id);
    this.segLive(m.seg, -1);
    const rec = encodeDone(id);
    return this.enqueue([rec], rec.length).then(() => {}, (err) => {
      this.warn('spool remove failed', { id, err: (err as Error).message });
    });
  }

  async readContent(id: string): Promise<Buffer> {
    const m = this.messages.get(id);
    if (!m) throw new Error(`message ${id} is not in the queue`);
    const seg = this.segments.find((s) => s.seq === m.seg);
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

  /** Deletes the oldest segments while nothing in them is live; compacts an old oldest one. */
  async maintain(): Promise<void> {
    if (this.closed || this.compacting) return;
    this.compacting = true;
    try {
      await this.dropDeadSegments();
      const oldest = this.segments[0];
      if (oldest && oldest !== this.current && (Date.now() - oldest.createdAt > this.compactAfterMs || this.segments.length > 8)) {
        const movers = [...this.messages.values()].filter((m) => m.seg === oldest.seq);
        for (const m of movers) {
          const content = await this.readContent(m.meta.id);
          if (!this.messages.has(m.meta.id)) continue; // removed meanwhile
          const { parts, length, contentOffset } = encodeMessageParts(m.meta, content);
          const pos = await this.enqueue(parts, length);
          const now = this.messages.get(m.meta.id);
          if (!now) continue; // removed while being copied: its done record follows the copy
          this.segLive(now.seg, -1);
          now.seg = pos.seg;
          now.contentPos = pos.offset + contentOffset;
          this.segLive(pos.seg, +1);
        }
        await this.dropDeadSegments();
      }
    } catch (err) {
      this.warn('spool maintenance failed', { err: (err as Error).message });
    } finally {
      this.compacting = false;
    }
  }

  private async dropDeadSegments(): Promise<void> {
    while (this.segments.length > 1 && this.segments[0] !== this.current && this.segments[0].live <= 0) {
      const s = this.segments.shift()!;
      await unlink(s.file).catch(() => {});
      // readers that started before the unlink finish on the open handle
      const fh = s.fh;
      if (fh) setTimeout(() => { void fh.close().catch(() => {}); }, 30_000).unref();
    }
  }

  /** Waits for pending writes, then closes every file. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    while (this.forming || this.flights > 0 || this.pending.length > 0) {
      void this.pump();
      await new Promise((r) => setTimeout(r, 5));
    }
    this.closed = true;
    for (const s of this.segments) if (s.fh) await s.fh.close().catch(() => {});
  }

  get segmentCount(): number {
    return this.segments.length;
  }
}
