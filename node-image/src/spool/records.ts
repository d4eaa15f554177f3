// The spool's on-disk record format, pure (bytes <-> records). A segment file is a
// sequence of records:
//   u32 magic 'MCL1' | u8 type | u32 payload length | u32 crc32(payload) | payload
// A torn tail (crash mid-write) is an incomplete last record: nothing in it was
// acknowledged. A record that fails its check in the middle (a corrupted disk block) is
// skipped, and decoding resyncs on the next valid record, so one bad record never takes
// the acknowledged records behind it down with it.
import { crc32 } from 'node:zlib';

export const MAGIC = 0x4d434c31;
export const HEADER_BYTES = 13;
export const TYPE_MESSAGE = 1;
export const TYPE_UPDATE = 2;
export const TYPE_DONE = 3;

export type RecipientStatus = 'pending' | 'deferred' | 'delivered' | 'failed';

export interface RecipientState {
  address: string;
  status: RecipientStatus;
  /** Last error (deferred/failed) or the remote reply (delivered). */
  error?: string;
}

/** A queued message's envelope and delivery state; content is stored beside it. */
export interface MessageMeta {
  id: string;
  /** Envelope sender; '' is the null sender (bounces). */
  from: string;
  rcpts: RecipientState[];
  /** ms since epoch. */
  receivedAt: number;
  attempts: number;
  /** ms since epoch. */
  nextAttempt: number;
  size: number;
  clientAddress?: string;
  /** The message is a DSN we generated (never bounced again). */
  bounce?: boolean;
  /**
   * The content lives in its own blob file (large messages streamed to disk), not in the
   * record; its length and CRC are here, covered by the record's CRC.
   */
  blob?: { length: number; crc: number };
  /** On hold (admin API): no delivery attempt, ETRN or drain hand-off until released. */
  held?: boolean;
}

export interface UpdateRecord {
  id: string;
  rcpts: RecipientState[];
  attempts: number;
  nextAttempt: number;
  /** Present once a message was ever held or released (older records lack it). */
  held?: boolean;
}

function frame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32BE(MAGIC, 0);
  head.writeUInt8(type, 4);
  head.writeUInt32BE(payload.length, 5);
  head.writeUInt32BE(crc32(payload), 9);
  return Buffer.concat([head, payload]);
}

/**
 * A message record as two parts (header + envelope, then the content itself, not copied);
 * `contentOffset` is where the content starts inside the record.
 */
export function encodeMessageParts(meta: MessageMeta, content: Buffer): { parts: Buffer[]; length: number; contentOffset: number } {
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(HEADER_BYTES + 4 + json.length);
  const payloadLength = 4 + json.length + content.length;
  head.writeUInt32BE(MAGIC, 0);
  head.writeUInt8(TYPE_MESSAGE, 4);
  head.writeUInt32BE(payloadLength, 5);
  head.writeUInt32BE(json.length, HEADER_BYTES);
  json.copy(head, HEADER_BYTES + 4);
  const crc = crc32(content, crc32(head.subarray(HEADER_BYTES)));
  head.writeUInt32BE(crc, 9);
  return { parts: [head, content], length: head.length + content.length, contentOffset: head.length };
}

/** A message record in one buffer (see encodeMessageParts). */
export function encodeMessage(meta: MessageMeta, content: Buffer): { record: Buffer; contentOffset: number } {
  const { parts, contentOffset } = encodeMessageParts(meta, content);
  return { record: Buffer.concat(parts), contentOffset };
}

export function encodeUpdate(u: UpdateRecord): Buffer {
  return frame(TYPE_UPDATE, Buffer.from(JSON.stringify(u)));
}

export function encodeDone(id: string): Buffer {
  return frame(TYPE_DONE, Buffer.from(JSON.stringify({ id })));
}

export type DecodedRecord =
  | { type: 'message'; meta: MessageMeta; contentOffset: number; contentLength: number; offset: number; length: number }
  | { type: 'update'; update: UpdateRecord; offset: number; length: number }
  | { type: 'done'; id: string; offset: number; length: number };

/** A byte range of a segment that is not a valid record. */
export interface BadRegion {
  offset: number;
  length: number;
  reason: string;
}

const MAGIC_BYTES = Buffer.from([0x4d, 0x43, 0x4c, 0x31]);

type Attempt =
  | { ok: true; record: DecodedRecord; end: number }
  | { ok: false; reason: string; incomplete: boolean; declaredEnd?: number };

/** Decodes the one record that starts at `pos`, or says why there is none. */
function recordAt(buf: Buffer, pos: number): Attempt {
  if (buf.length - pos < HEADER_BYTES) return { ok: false, reason: 'truncated header', incomplete: true };
  const type = buf.readUInt8(pos + 4);
  const len = buf.readUInt32BE(pos + 5);
  if (buf.readUInt32BE(pos) !== MAGIC) {
    // the length may still be right (only the magic hit): lets the caller skip without scanning the content
    const end = pos + HEADER_BYTES + len;
    return { ok: false, reason: 'bad magic', incomplete: false, ...(end <= buf.length ? { declaredEnd: end } : {}) };
  }
  const crc = buf.readUInt32BE(pos + 9);
  const start = pos + HEADER_BYTES;
  if (buf.length - start < len) return { ok: false, reason: 'truncated payload', incomplete: true };
  const end = start + len;
  const payload = buf.subarray(start, end);
  if (crc32(payload) !== crc) return { ok: false, reason: 'checksum mismatch', incomplete: false, declaredEnd: end };
  try {
    if (type === TYPE_MESSAGE) {
      const jl = payload.readUInt32BE(0);
      if (4 + jl > len) throw new Error('envelope longer than the record');
      const meta = JSON.parse(payload.subarray(4, 4 + jl).toString()) as MessageMeta;
      return { ok: true, end, record: { type: 'message', meta, contentOffset: start + 4 + jl, contentLength: len - 4 - jl, offset: pos, length: HEADER_BYTES + len } };
    }
    if (type === TYPE_UPDATE) return { ok: true, end, record: { type: 'update', update: JSON.parse(payload.toString()) as UpdateRecord, offset: pos, length: HEADER_BYTES + len } };
    if (type === TYPE_DONE) return { ok: true, end, record: { type: 'done', id: (JSON.parse(payload.toString()) as { id: string }).id, offset: pos, length: HEADER_BYTES + len } };
    return { ok: false, reason: `unknown record type ${type}`, incomplete: false, declaredEnd: end };
  } catch (err) {
    return { ok: false, reason: `bad record: ${(err as Error).message}`, incomplete: false, declaredEnd: end };
  }
}

/**
 * Decodes records from a segment's bytes. A record that fails its check is reported in
 * `bad` and decoding goes on with the next valid record: right after the bad one when its
 * length field leads to a valid record (or the end), otherwise at the next offset where
 * magic, length and CRC all check out. Skipping by length first matters: a scan through a
 * message's content could take bytes a sender wrote there for a record. A bad stretch that no valid record
 * follows is the `tail`: `torn` when it is an incomplete record (a crash mid-write),
 * otherwise corrupt. `validLength` is where the tail starts (the whole length without one).
 */
export function decodeSegment(buf: Buffer): { records: DecodedRecord[]; validLength: number; bad: BadRegion[]; tail?: BadRegion & { torn: boolean }; error?: string } {
  const records: DecodedRecord[] = [];
  const bad: BadRegion[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const a = recordAt(buf, pos);
    if (a.ok) { records.push(a.record); pos = a.end; continue; }
    let next = -1;
    if (a.declaredEnd !== undefined && (a.declaredEnd === buf.length || recordAt(buf, a.declaredEnd).ok)) {
      next = a.declaredEnd;
    } else {
      for (let q = buf.indexOf(MAGIC_BYTES, pos + 1); q !== -1; q = buf.indexOf(MAGIC_BYTES, q + 1)) {
        if (recordAt(buf, q).ok) { next = q; break; }
      }
    }
    if (next === -1 || next === buf.length) {
      const tail = { offset: pos, length: buf.length - pos, reason: a.reason, torn: a.incomplete && next === -1 };
      return { records, validLength: pos, bad, tail, error: a.reason };
    }
    bad.push({ offset: pos, length: next - pos, reason: a.reason });
    pos = next;
  }
  return { records, validLength: pos, bad };
}
