// smtp-server reads DATA by looking at every byte in JavaScript for a dot at the start of
// a line (the end of data, or a dot-stuffing escape). A chunk without any "\n." cannot
// hold either: for it the scan finds nothing and smtp-server keeps the last 4 bytes and
// passes the rest on. This does that directly after one native indexOf; every other chunk
// takes smtp-server's own code. (For 100 KB messages the scan was a large part of inbound cost.)
// It never copies a chunk: the 4 bytes kept from the previous chunk go out as their own write.
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

const LF_DOT = Buffer.from('\n.');
const LF = 0x0a;
const DOT = 0x2e;

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
    if (this._atDataStart || !dataStream || chunk.length < 4) return original.call(this, chunk, done);
    // "\n." anywhere in the kept bytes + chunk, looked for without joining them: smtp-server's
    // Buffer.concat copied every chunk of every message once more
    const last = this._lastBytes && this._lastBytes.length ? this._lastBytes : null;
    if (chunk.indexOf(LF_DOT) !== -1) return original.call(this, chunk, done);
    if (last && (last.indexOf(LF_DOT) !== -1 || (last[last.length - 1] === LF && chunk[0] === DOT))) return original.call(this, chunk, done);
    // keep the chunk's last 4 bytes (a copy: the chunk is not held for them), emit the rest
    this._lastBytes = Buffer.from(chunk.subarray(chunk.length - 4));
    const body = chunk.subarray(0, chunk.length - 4);
    const n = (last ? last.length : 0) + body.length;
    if (n === 0) return done();
    this._countDataBytes(n);
    if (!dataStream.writable) return done();
    let ok = true;
    if (last) ok = dataStream.write(last);
    if (body.length > 0) ok = dataStream.write(body);
    if (ok || dataStream.destroyed) return done();
    // wait for the consumer, as smtp-server does (a destroyed stream only closes)
    const onDrain = () => {
      dataStream.removeListener('drain', onDrain);
      dataStream.removeListener('close', onDrain);
      done();
    };
    dataStream.once('drain', onDrain);
    dataStream.once('close', onDrain);
  };
}
