// The spool's on-disk record format, pure (bytes <-> records). A segment file is a
// sequence of records; a torn tail (crash mid-write) fails the length/CRC check and ends
// the segment: everything acknowledged was fsync'd before it.
//   u32 magic 'MCL1' | u8 type | u32 payload length | u32 crc32(payload) | payload
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

/**
 * Decodes records from a segment's bytes. Stops at the first incomplete or corrupt record
 * and reports where the valid part ends (`validLength`).
 */
export function decodeSegment(buf: Buffer): { records: DecodedRecord[]; validLength: number; error?: string } {
  const records: DecodedRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf.length - pos < HEADER_BYTES) return { records, validLength: pos, error: 'truncated header' };
    if (buf.readUInt32BE(pos) !== MAGIC) return { records, validLength: pos, error: 'bad magic' };
    const type = buf.readUInt8(pos + 4);
    const len = buf.readUInt32BE(pos + 5);
    const crc = buf.readUInt32BE(pos + 9);
    const start = pos + HEADER_BYTES;
    if (buf.length - start < len) return { records, validLength: pos, error: 'truncated payload' };
    const payload = buf.subarray(start, start + len);
    if (crc32(payload) !== crc) return { records, validLength: pos, error: 'checksum mismatch' };
    try {
      if (type === TYPE_MESSAGE) {
        const jl = payload.readUInt32BE(0);
        const meta = JSON.parse(payload.subarray(4, 4 + jl).toString()) as MessageMeta;
        records.push({ type: 'message', meta, contentOffset: start + 4 + jl, contentLength: len - 4 - jl, offset: pos, length: HEADER_BYTES + len });
      } else if (type === TYPE_UPDATE) {
        records.push({ type: 'update', update: JSON.parse(payload.toString()) as UpdateRecord, offset: pos, length: HEADER_BYTES + len });
      } else if (type === TYPE_DONE) {
        records.push({ type: 'done', id: (JSON.parse(payload.toString()) as { id: string }).id, offset: pos, length: HEADER_BYTES + len });
      } else {
        return { records, validLength: pos, error: `unknown record type ${type}` };
      }
    } catch (err) {
      return { records, validLength: pos, error: `bad record: ${(err as Error).message}` };
    }
    pos = start + len;
  }
  return { records, validLength: pos };
}
