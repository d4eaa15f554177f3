// nodemailer's DataStream (SMTP dot-stuffing and CRLF normalisation of the DATA stream)
// walks every byte in JavaScript: for a relay that forwards 100 KB messages that loop is
// the largest cost of delivery. Spooled messages are nearly always canonical already
// (CRLF line ends, no line starting with a dot), which native indexOf checks in a few
// hundred steps; such a chunk passes through unchanged, exactly as the original loop would
// pass it. Anything else goes to the original code.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** True when the original transform would insert nothing into `chunk` (given the byte before it; false = stream start). */
export function isCanonicalChunk(chunk: Buffer, lastByte: number | false): boolean {
  const len = chunk.length;
  if (len === 0) return true;
  const first = chunk[0];
  if (lastByte === CR && first !== LF) return false;
  if (first === DOT && (lastByte === LF || lastByte === false)) return false;
  for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, i + 1)) {
    const prev = i > 0 ? chunk[i - 1] : lastByte;
    if (prev !== CR) return false;
    if (i + 1 < len && chunk[i + 1] === DOT) return false;
  }
  for (let i = chunk.indexOf(CR); i !== -1; i = chunk.indexOf(CR, i + 1)) {
    if (i + 1 < len && chunk[i + 1] !== LF) return false;
  }
  return true;
}

type Transform = (this: DataStreamLike, chunk: Buffer | string, encoding: BufferEncoding, done: () => void) => void;
interface DataStreamLike {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  push(chunk: Buffer): boolean;
}

export let originalTransform: Transform | null = null;

/** Patches the DataStream class that nodemailer's ESM SMTPConnection uses (idempotent). */
export async function installFastDataStream(): Promise<void> {
  if (originalTransform) return;
  const require = createRequire(import.meta.url);
  const cjsMain = require.resolve('nodemailer'); // …/nodemailer/dist/cjs/nodemailer.js
  const file = path.join(path.dirname(cjsMain), '..', 'esm', 'smtp-connection', 'data-stream.js');
  const mod = (await import(pathToFileURL(file).href)) as { default: { prototype: { _transform: Transform } } };
  const proto = mod.default.prototype;
  const original = proto._transform;
  originalTransform = original;
  proto._transform = function (this: DataStreamLike, chunk, encoding, done) {
    if (Buffer.isBuffer(chunk) && chunk.length > 0 && isCanonicalChunk(chunk, this.lastByte)) {
      this.inByteCount += chunk.length;
      this.outByteCount += chunk.length;
      this.push(chunk);
      this.lastByte = chunk[chunk.length - 1];
      return done();
    }
    return original.call(this, chunk, encoding, done);
  };
}
