// smtp-server reads DATA by looking at every byte in JavaScript for a dot at the start of
// a line (the end of data, or a dot-stuffing escape), after copying the 4 bytes it kept
// from the last chunk and the new chunk into one buffer. Only a "\n." can start either, so
// this finds the first one with native indexOf: everything before it is passed on as
// smtp-server would pass it (keeping the last 4 bytes when there is none), without the
// copy, and smtp-server's own code takes the rest from 2 bytes before that dot (where its
// loop would have looked at it). A message's first chunk takes the same path unless it
// starts with a dot (smtp-server's start-of-data checks). (For 100 KB messages the byte
// loop was a large part of inbound cost: the first and the last chunk of every message
// went through it.) It never joins a chunk with the kept bytes: they go out as their own write.
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

const LF_DOT = Buffer.from('\n.');
const DOT = 0x2e;
/** smtp-server keeps this many bytes of a chunk for the next one (a terminator may straddle them). */
const KEEP = 4;

interface DataModeInternals {
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _dataStream: (NodeJS.WritableStream & { writable: boolean; destroyed: boolean }) | false;
  _countDataBytes(n: number): void;
  _feedDataStream(chunk: Buffer, done: () => void): void;
}

let installed = false;
/** smtp-server's own implementation (for the equivalence test). */
export let originalFeedDataStream: ((chunk: Buffer, done: () => void) => void) | null = null;

export function installFastDataMode(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPStream.prototype as unknown as DataModeInternals;
  const original = proto._feedDataStream;
  originalFeedDataStream = original;
  proto._feedDataStream = function (this: DataModeInternals, chunk: Buffer, done: () => void) {
    const dataStream = this._dataStream;
    const last = this._lastBytes && this._lastBytes.length ? this._lastBytes : null;
    // small chunks, a leading dot at the start of data, or a "\n." near the join: smtp-server's code
    if (!dataStream || chunk.length < KEEP || (this._atDataStart && (last || chunk[0] === DOT))) return original.call(this, chunk, done);
    const join = last ? Buffer.concat([last, chunk.subarray(0, KEEP)]) : chunk.subarray(0, KEEP);
    if (join.indexOf(LF_DOT) !== -1) return original.call(this, chunk, done);
    // the first "\n." not in `join` starts at chunk index >= KEEP - 1 (its dot at >= KEEP)
    const at = chunk.indexOf(LF_DOT, KEEP - 1);
    // pass on everything before it (or before the kept bytes), as smtp-server would
    const end = at === -1 ? chunk.length - KEEP : at - 1;
    const ahead = chunk.subarray(0, end);
    this._lastBytes = false;
    const passed = (last ? last.length : 0) + ahead.length;
    if (passed > 0) this._countDataBytes(passed);
    let flowing = true;
    if (dataStream.writable) {
      if (last) flowing = dataStream.write(last);
      if (ahead.length > 0) flowing = dataStream.write(ahead) && flowing;
    }
    const go = at === -1
      ? () => { this._lastBytes = Buffer.from(chunk.subarray(chunk.length - KEEP)); done(); } // a copy: the chunk is not held for 4 bytes
      : () => original.call(this, chunk.subarray(end), done);
    if (flowing || !dataStream.writable || dataStream.destroyed) return go();
    // wait for the consumer, as smtp-server does (a destroyed stream only closes)
    const onDrain = () => {
      dataStream.removeListener('drain', onDrain);
      dataStream.removeListener('close', onDrain);
      go();
    };
    dataStream.once('drain', onDrain);
    dataStream.once('close', onDrain);
  };
}
