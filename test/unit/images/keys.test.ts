// The image content keys decide whether `npm run images` builds again: a key that misses an
// input serves a stale image. Pure checks: the key's framing, and that every COPY source of
// both Dockerfiles is among the inputs the key reads.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contentKey, IMAGE_SPECS, imageCacheDirName, imageRef } from '../../../local/src/images/keys.ts';
import { repoRoot } from '../../../local/src/images/build.ts';
import { load } from 'js-yaml';
import { NODE_MALLOC_ENV, NODE_V8_FLAGS, nodeReexec, operatorReexec, operatorV8Flags } from '../../../node-image/src/process-env.ts';

const f = (path: string, text: string) => ({ path, content: Buffer.from(text) });

describe('images: content keys', function () {
  it('does not depend on the order files are given in', function () {
    assert.equal(contentKey({ a: '1' }, [f('x', 'one'), f('y', 'two')]), contentKey({ a: '1' }, [f('y', 'two'), f('x', 'one')]));
  });

  it('changes with a byte, a rename, a byte moved across files, a part, a new empty file', function () {
    const base = contentKey({ base: 'b' }, [f('a', 'ab'), f('b', 'c')]);
    const variants = [
      contentKey({ base: 'b' }, [f('a', 'ac'), f('b', 'c')]),
      contentKey({ base: 'b' }, [f('a2', 'ab'), f('b', 'c')]),
      contentKey({ base: 'b' }, [f('a', 'a'), f('b', 'bc')]),
      contentKey({ base: 'c' }, [f('a', 'ab'), f('b', 'c')]),
      contentKey({ base: 'b' }, [f('a', 'ab'), f('b', 'c'), f('e', '')]),
    ];
    for (const v of variants) assert.notEqual(v, base);
    assert.equal(new Set(variants).size, variants.length);
  });

  it('names images as Kubernetes resolves the chart\'s references, and cache dirs readably', function () {
    assert.equal(imageRef('node', '0.1.0'), 'docker.io/mailcluster/node:0.1.0');
    assert.equal(imageCacheDirName('operator', '0.1.0', 'ab'.repeat(32)), `operator-0.1.0-${'ab'.repeat(8)}`);
  });
});

describe('images: Dockerfiles', function () {
  for (const spec of IMAGE_SPECS) {
    const text = readFileSync(join(repoRoot, spec.dockerfile), 'utf8');
    const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim());

    it(`${spec.dockerfile}: every COPY source is an input of the content key`, function () {
      const sources = lines.filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l))
        .flatMap((l) => l.split(/\s+/).slice(1, -1))
        .filter((s) => !s.startsWith('.staged/'));
      assert.ok(sources.length > 0);
      for (const s of sources) {
        const path = s.replace(/\/$/, '');
        assert.ok(spec.inputs.some((i) => path === i || path.startsWith(`${i}/`)), `${s} is not in ${spec.name}'s inputs ${spec.inputs.join(', ')}`);
      }
    });

    it(`${spec.dockerfile}: base from ARG BASE (default node:24-slim), non-root 10001`, function () {
      assert.ok(lines.includes('ARG BASE=node:24-slim'));
      const froms = lines.filter((l) => /^FROM\s/i.test(l));
      assert.equal(froms[froms.length - 1], 'FROM ${BASE}');
      assert.equal(lines.filter((l) => /^USER\s/i.test(l)).pop(), 'USER 10001:10001');
    });

    it(`${spec.dockerfile}: ENTRYPOINT and ENV carry process-env.ts's settings (no second Node start)`, function () {
      const entrypoint = JSON.parse(lines.filter((l) => /^ENTRYPOINT\s/i.test(l)).pop()!.replace(/^ENTRYPOINT\s+/i, '')) as string[];
      // the operator's image runs where the chart's memory limit holds: its flags for that much memory
      const chartLimit = (load(readFileSync(join(repoRoot, 'helm/mailcluster-operator/values.yaml'), 'utf8')) as { resources: { limits: { memory: string } } }).resources.limits.memory;
      assert.match(chartLimit, /^\d+Mi$/);
      const operatorMemory = parseInt(chartLimit, 10) * 1024 ** 2;
      const flags = spec.name === 'node' ? [...NODE_V8_FLAGS] : operatorV8Flags(operatorMemory);
      assert.deepEqual(entrypoint.slice(1, 1 + flags.length), flags);
      assert.ok(!entrypoint[1 + flags.length].startsWith('--'), 'no other flag');
      for (const [k, v] of Object.entries(NODE_MALLOC_ENV)) assert.ok(lines.includes(`ENV ${k}=${v}`), `ENV ${k}=${v}`);
      const argv = ['/usr/local/bin/node', ...entrypoint.slice(1 + flags.length)];
      const reexec = spec.name === 'node'
        ? nodeReexec('/usr/local/bin/node', flags, argv, { ...NODE_MALLOC_ENV })
        : operatorReexec('/usr/local/bin/node', flags, argv, { ...NODE_MALLOC_ENV }, operatorMemory);
      assert.equal(reexec, null);
    });
  }
});
