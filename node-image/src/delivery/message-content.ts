// What one delivery attempt sends. A small message travels as its bytes; a large one (a
// spool blob file) as the file's path, read by the delivery thread itself in bounded
// chunks with backpressure, and only once the destination has accepted the envelope:
// nodemailer pipes the message stream after DATA's 354, so an attempt against a host that
// is down, or that refuses the sender or every recipient, reads nothing at all.
//
// The blob's length and CRC (recorded when it was received) are checked while it is read.
// A mismatch fails the stream before it ends, and the DATA terminator comes only from the
// stream's end: the destination never gets the final dot of a short or corrupt message.
import { Readable } from 'node:stream';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export type MessageContent =
  | { kind: 'bytes'; raw: Uint8Array }
  | { kind: 'blob'; path: string; length: number; crc: number };

/** Bytes read from a blob per step (the stream's high-water mark too). */
export const BLOB_READ_CHUNK_BYTES = 64 * 1024;

/**
 * About what one streamed attempt holds in memory at most: the read-ahead chunk, what the
 * SMTP data stream and the socket buffer hold before backpressure stops the reads, and
 * their copies in flight. For the delivery content budget (policy.ts deliveryHeldBytes).
 */
export const BLOB_STREAM_HELD_BYTES = 256 * 1024;

/** A blob that does not match its record: `code` EBLOB (nodemailer keeps it as originalCode). */
export class BlobCheckError extends Error {
  readonly code = 'EBLOB';
  constructor(message: string) {
    super(message);
    this.name = 'BlobCheckError';
  }
}

/** Reads a spool blob file lazily (opened at the first read), checking its length and CRC. */
export class BlobReadStream extends Readable {
  readonly file: string;
  readonly expectedLength: number;
  readonly expectedCrc: number;
  private readonly chunkBytes: number;
  private fh: FileHandle | null = null;
  private opening = false;
  private pos = 0;
  private crc = 0;

  constructor(file: string, length: number, crc: number, chunkBytes = BLOB_READ_CHUNK_BYTES) {
    super({ highWaterMark: chunkBytes });
    this.file = file;
    this.expectedLength = length;
    this.expectedCrc = crc;
    this.chunkBytes = chunkBytes;
  }

  override _read(): void {
    void this.step();
  }

  private async step(): Promise<void> {
    try {
      if (!this.fh) {
        if (this.opening) return;
        this.opening = true;
        const fh = await open(this.file, 'r');
        if (this.destroyed) { await fh.close().catch(() => {}); return; }
        this.fh = fh;
        const { size } = await fh.stat();
        if (size !== this.expectedLength) throw new BlobCheckError(`blob ${this.file} holds ${size} bytes, its record says ${this.expectedLength}`);
      }
      const want = Math.min(this.chunkBytes, this.expectedLength - this.pos);
      if (want <= 0) return this.finish();
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await this.fh.read(buf, got, want - got, this.pos + got);
        if (bytesRead === 0) throw new BlobCheckError(`blob ${this.file} ends at ${this.pos + got} of ${this.expectedLength} bytes`);
        got += bytesRead;
      }
      if (this.destroyed) return;
      this.pos += want;
      this.crc = crc32(buf, this.crc);
      // the last chunk goes out only with the check passed, then the end
      if (this.pos === this.expectedLength) { this.verifyCrc(); this.push(buf); this.finish(); return; }
      this.push(buf);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  private verifyCrc(): void {
    if (this.crc !== this.expectedCrc) throw new BlobCheckError(`blob ${this.file} fails its CRC check`);
  }

  private finish(): void {
    if (this.expectedLength === 0) this.verifyCrc();
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = null;
    if (!fh) return cb(err);
    fh.close().then(() => cb(err), () => cb(err));
  }
}

/** The body nodemailer sends for `content`: the bytes, or a fresh stream of the blob (one per transaction). */
export function messageBody(content: MessageContent): Buffer | Readable {
  if (content.kind === 'bytes') return Buffer.from(content.raw.buffer, content.raw.byteOffset, content.raw.byteLength);
  return new BlobReadStream(content.path, content.length, content.crc);
}

