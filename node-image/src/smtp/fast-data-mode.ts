// smtp-server reads DATA by looking at every byte in JavaScript for a dot at the start of
// a line (the end of data, or a dot-stuffing escape). A chunk without any "\n." cannot
// hold either: for it the scan finds nothing and smtp-server keeps the last 4 bytes and
// passes the rest on. This does that directly after one native indexOf; every other chunk
// takes smtp-server's own code. (For 100 KB messages the scan was a large part of inbound cost.)
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

const LF_DOT = Buffer.from('\n.');

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
    if (this._atDataStart || !dataStream) return original.call(this, chunk, done);
    const merged = this._lastBytes && this._lastBytes.length ? Buffer.concat([this._lastBytes, chunk]) : chunk;
    if (merged.indexOf(LF_DOT) !== -1) return original.call(this, chunk, done);
    this._lastBytes = merged.length < 4 ? merged : merged.subarray(merged.length - 4);
    if (this._lastBytes.length >= merged.length) return done();
    const buf = merged.subarray(0, merged.length - this._lastBytes.length);
    this._countDataBytes(buf.length);
    if (!dataStream.writable) return done();
    if (dataStream.write(buf) || dataStream.destroyed) return done();
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
