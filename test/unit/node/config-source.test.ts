// Which copy of the node's ConfigMap wins: the API server's watch or the mounted files
// (node-image/src/config/source.ts). A model of the operator, the API server, the watch and a
// lagging kubelet drives it with fast-check; the guarantees are checked after every step.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigSourceChooser, contentHash } from '../../../node-image/src/config/source.ts';

const hashOf = (v: number): string => contentHash(`PARAM hostname v${v}\n`, `SELFADDRESSES=v${v}\n`)!;

type Step =
  | { t: 'publish' } // the operator writes a new version
  | { t: 'apiEvent' } // the watch delivers the next version (in order, none skipped while live)
  | { t: 'apiDown' }
  | { t: 'apiUp' } // reconnect: relist, the newest version at once (what was missed is skipped)
  | { t: 'kubelet'; to: number } // the kubelet writes a newer version it has (lagging, monotone)
  | { t: 'secretChange' }; // the projected volume is rewritten with the same ConfigMap content

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ t: 'publish' }),
  fc.constant<Step>({ t: 'apiEvent' }),
  fc.constant<Step>({ t: 'apiDown' }),
  fc.constant<Step>({ t: 'apiUp' }),
  fc.integer({ min: 0, max: 1000 }).map((to): Step => ({ t: 'kubelet', to })),
  fc.constant<Step>({ t: 'secretChange' }),
);

describe('node config source: API watch or mounted file, the newest wins', () => {
  it('while the watch is live the node runs the watch\'s content; it never flips back to a content it ran or saw before a newer one; with the watch away a new file content applies', () => {
    fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      const chooser = new ConfigSourceChooser();
      let latest = 0;
      let api: number | null = null; // what the watch delivered last
      let live = false;
      let file = 0;
      let applied = 0; // the node starts from the file
      const seen = new Set<number>([0]); // contents the node saw from either side
      const history: number[] = [0];
      const reload = (): void => {
        const source = chooser.choose(hashOf(file));
        const next = source === 'api' ? api! : file;
        if (source === 'api') assert.notEqual(api, null);
        if (next < applied && seen.has(next)) {
          // Back to an older content the node had already seen: a flip-flop.
          assert.fail(`flip-flop: ran v${applied}, then v${next} (history ${history.join(' ')})`);
        }
        applied = next;
        history.push(next);
      };
      for (const s of steps) {
        switch (s.t) {
          case 'publish': latest++; break;
          case 'apiEvent':
            if (!live || api === latest) continue;
            api = (api ?? latest - 1) + 1;
            seen.add(api); chooser.apiContent(hashOf(api)); reload();
            break;
          case 'apiDown': if (!live) continue; live = false; chooser.apiLive(false); reload(); break;
          case 'apiUp':
            if (live) continue;
            api = latest; live = true;
            seen.add(api); chooser.apiContent(hashOf(api)); chooser.apiLive(true); reload();
            break;
          case 'kubelet': {
            if (file === latest) continue;
            file = file + 1 + (s.to % (latest - file));
            reload();
            seen.add(file);
            break;
          }
          case 'secretChange': reload(); break;
        }
        if (live) assert.equal(applied, api, `live watch: runs the watch's v${api}, not v${applied}`);
      }
    }), { numRuns: 3000 });
  });

  it('the fallback: no watch content at all, or the watch away and the file moved on to a content never seen: the file', () => {
    const c = new ConfigSourceChooser();
    assert.equal(c.choose(hashOf(1)), 'file');
    c.apiContent(hashOf(2));
    c.apiLive(true);
    assert.equal(c.choose(hashOf(1)), 'api', 'an older file while the watch is live');
    c.apiLive(false);
    assert.equal(c.choose(hashOf(1)), 'api', 'the file that was on disk when the watch gave v2 is older than v2');
    assert.equal(c.choose(hashOf(2)), 'api', 'the file caught up: same content');
    assert.equal(c.choose(hashOf(3)), 'file', 'a content never seen while the watch is away: newer, applied');
    assert.equal(c.choose(hashOf(4)), 'file');
    c.apiContent(hashOf(5));
    c.apiLive(true);
    assert.equal(c.choose(hashOf(4)), 'api', 'the watch back with v5');
    assert.equal(c.choose(null), 'api', 'a missing file');
  });

  it('the one case it cannot tell (documented): a version the watch skipped on a relist, written late by the kubelet while the watch is away again', () => {
    const c = new ConfigSourceChooser();
    c.choose(hashOf(1));
    c.apiContent(hashOf(3)); // relist after v2 was written and replaced
    c.apiLive(true);
    assert.equal(c.choose(hashOf(1)), 'api');
    c.apiLive(false);
    assert.equal(c.choose(hashOf(2)), 'file', 'v2 was never seen: taken as newer until the watch is back');
  });
});
