import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { installFastDataStream, isCanonicalChunk, originalTransform } from '../../../node-image/src/delivery/fast-data-stream.ts';

// nodemailer's DataStream, to run both the patched and the original transform on the same input
const require = createRequire(import.meta.url);
const file = path.join(path.dirname(require.resolve('nodemailer')), '..', 'esm', 'smtp-connection', 'data-stream.js');

async function run(chunks: string[], useOriginal: boolean): Promise<string> {
  await installFastDataStream();
  const { default: DataStream } = await import(pathToFileURL(file).href) as { default: new () => NodeJS.ReadWriteStream & { _transform: unknown } };
  const s = new DataStream();
  if (useOriginal) (s as unknown as { _transform: unknown })._transform = originalTransform;
  const out: Buffer[] = [];
  s.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((r) => s.on('end', r));
  for (const c of chunks) s.write(Buffer.from(c, 'latin1'));
  s.end();
  await done;
  return Buffer.concat(out).toString('latin1');
}

describe('fast DataStream pass-through', () => {
  it('says canonical only when the original loop would insert nothing', () => {
    assert.ok(isCanonicalChunk(Buffer.from('a\r\nb\r\n'), false));
    assert.ok(!isCanonicalChunk(Buffer.from('.a\r\n'), false));
    assert.ok(isCanonicalChunk(Buffer.from('.a\r\n'), 0x61));
    assert.ok(!isCanonicalChunk(Buffer.from('a\r\n.b'), false));
    assert.ok(!isCanonicalChunk(Buffer.from('a\nb'), false));
    assert.ok(!isCanonicalChunk(Buffer.from('a\rb'), false));
    assert.ok(!isCanonicalChunk(Buffer.from('\nb'), 0x61));
    assert.ok(isCanonicalChunk(Buffer.from('\nb'), 0x0d));
    assert.ok(!isCanonicalChunk(Buffer.from('b'), 0x0d));
  });

  it('produces exactly what nodemailer produces, for canonical and other input', async () => {
    const cases: string[][] = [
      ['Subject: x\r\n\r\nhello\r\n'],
      ['Subject: x\r\n\r\n.leading dot\r\n..two\r\n'],
      ['bare\nlf\r\nmixed\rcr\r\n'],
      ['ends with cr\r', '\nnext\r\n'],
      ['split line\r', '.dot after split\r\n'],
      ['no final newline'],
      ['a\r\n', '.b\r\n', 'c'],
      ['x'.repeat(100000) + '\r\n' + ('y'.repeat(76) + '\r\n').repeat(1000)],
    ];
    let seed = 7;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    const alphabet = ['a', '.', '\r', '\n', '\r\n', 'b'];
    for (let k = 0; k < 200; k++) {
      const parts: string[] = [];
      for (let p = 0; p < 1 + (rnd() % 3); p++) parts.push(Array.from({ length: 1 + (rnd() % 12) }, () => alphabet[rnd() % alphabet.length]).join(''));
      cases.push(parts);
    }
    for (const c of cases) assert.equal(await run(c, false), await run(c, true), JSON.stringify(c).slice(0, 200));
  });
});
