// BlobReadStream (delivery/message-content.ts): the delivery thread's reader of a spool
// blob file. Over random contents and chunk sizes it yields exactly the file; a file that
// is shorter, longer or has one byte changed fails the stream and never ends it (the end
// is what makes nodemailer send the DATA terminator); nothing is opened before the first read.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { BlobReadStream } from '../../../node-image/src/delivery/message-content.ts';

/** Reads the stream to its end or error: the bytes seen, and how it finished. */
function drain(s: BlobReadStream): Promise<{ bytes: Buffer; ended: boolean; error?: Error & { code?: string } }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => { ended = true; });
    s.on('error', (error: Error) => resolve({ bytes: Buffer.concat(chunks), ended, error }));
    s.on('close', () => setImmediate(() => resolve({ bytes: Buffer.concat(chunks), ended })));
  });
}

describe('BlobReadStream', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'blob-read-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('yields exactly the file, in chunks of at most the chunk size', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 1, max: 700 }), async (content, chunk) => {
      const file = join(dir, 'ok');
      writeFileSync(file, content);
      const s = new BlobReadStream(file, content.length, crc32(content), chunk);
      const sizes: number[] = [];
      s.on('data', (c: Buffer) => sizes.push(c.length));
      const r = await drain(s);
      assert.equal(r.error, undefined);
      assert.ok(r.ended);
      assert.deepEqual(r.bytes, Buffer.from(content));
      assert.ok(sizes.every((n) => n <= chunk));
    }), { numRuns: 60 });
  });

  it('a shorter, longer or changed file fails the stream without ending it', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 4000 }), fc.integer({ min: 1, max: 500 }), fc.constantFrom('short', 'long', 'flip'), fc.nat(),
      async (content, chunk, fault, pick) => {
        const good = Buffer.from(content);
        const at = pick % good.length;
        let bad: Buffer;
        if (fault === 'short') bad = good.subarray(0, at);
        else if (fault === 'long') bad = Buffer.concat([good, Buffer.from([pick & 0xff])]);
        else { bad = Buffer.from(good); bad[at] ^= 1 + (pick % 255); }
        const file = join(dir, 'bad');
        writeFileSync(file, bad);
        const r = await drain(new BlobReadStream(file, good.length, crc32(good), chunk));
        assert.equal(r.ended, false, 'never ended');
        assert.equal(r.error?.code, 'EBLOB');
      },
    ), { numRuns: 90 });
  });

  it('opens nothing before the first read: a stream destroyed unread never touches the file', async () => {
    const s = new BlobReadStream(join(dir, 'does-not-exist'), 10, 0);
    const r = new Promise<Error | undefined>((resolve) => { s.on('error', resolve); s.on('close', () => resolve(undefined)); });
    s.destroy();
    assert.equal(await r, undefined, 'no open error: the file was never opened');
  });
});
