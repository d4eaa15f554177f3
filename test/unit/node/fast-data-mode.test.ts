import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { installFastDataMode, originalFeedDataStream } from '../../../node-image/src/smtp/fast-data-mode.ts';

/** Feeds `chunks` to an SMTPStream in data mode; returns the message and the command after it. */
async function readData(chunks: Buffer[], useOriginal: boolean): Promise<{ data: string; after: string[] }> {
  installFastDataMode();
  const s = new SMTPStream() as SMTPStream & { _feedDataStream: unknown; oncommand: (c: Buffer, cb: () => void) => void };
  if (useOriginal && originalFeedDataStream) s._feedDataStream = originalFeedDataStream;
  const after: string[] = [];
  s.oncommand = (c, cb) => { after.push(c.toString()); cb?.(); };
  const ds = s.startDataMode(10_000_000);
  const out: Buffer[] = [];
  ds.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((r) => ds.on('end', r));
  for (const c of chunks) s.write(c);
  await ended;
  s.continue();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return { data: Buffer.concat(out).toString('latin1'), after };
}

describe('fast DATA mode reading', () => {
  it('reads exactly what smtp-server reads, however the input is split', async () => {
    let seed = 11;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    const alphabet = ['a', 'b', '.', '..', '\r\n', '\r\n.', '\n', '\r', 'xyz'];
    const bodies = [
      'Subject: x\r\n\r\nhello\r\n',
      'Subject: x\r\n\r\n..escaped dot\r\n...two\r\nend\r\n',
      ('y'.repeat(76) + '\r\n').repeat(2000),
    ];
    for (let k = 0; k < 150; k++) bodies.push(Array.from({ length: 5 + (rnd() % 60) }, () => alphabet[rnd() % alphabet.length]).join('') + '\r\n');
    for (const body of bodies) {
      const wire = Buffer.from(body + '.\r\nQUIT\r\n', 'latin1');
      const cuts = new Set<number>();
      for (let c = 0; c < 1 + (rnd() % 6); c++) cuts.add(1 + (rnd() % (wire.length - 1)));
      const points = [0, ...[...cuts].sort((a, b) => a - b), wire.length];
      const chunks = points.slice(1).map((p, i) => wire.subarray(points[i], p));
      const fast = await readData(chunks, false);
      const slow = await readData(chunks, true);
      assert.deepEqual(fast, slow, JSON.stringify(body).slice(0, 120));
    }
  });

  it('reads exactly what smtp-server reads for any body and any split (property)', async () => {
    // pieces that make line starts, dots, escapes, bare CR/LF and terminator-like runs likely
    const piece = fc.constantFrom('a', 'xyz', '.', '..', '\r\n', '\r\n.', '\r\n..', '\n', '\r', '\n.', '.\r\n', 'X'.repeat(70));
    await fc.assert(fc.asyncProperty(
      fc.array(piece, { maxLength: 80 }),
      fc.array(fc.integer({ min: 1, max: 1_000_000 }), { maxLength: 12 }),
      fc.boolean(),
      async (pieces, cutSeeds, trailingCommand) => {
        const wire = Buffer.from(pieces.join('') + '\r\n.\r\n' + (trailingCommand ? 'QUIT\r\n' : ''), 'latin1');
        const cuts = [...new Set(cutSeeds.map((c) => 1 + (c % (wire.length - 1))))].sort((a, b) => a - b);
        const points = [0, ...cuts, wire.length];
        const chunks = points.slice(1).map((p, i) => wire.subarray(points[i], p));
        assert.deepEqual(await readData(chunks, false), await readData(chunks, true));
      },
    ), { numRuns: 400 });
  });
});
