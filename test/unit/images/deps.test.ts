// An image gets only the installed packages its sources import and what those need,
// resolved through package-lock.json as Node resolves them: a missed package breaks the
// image at run time, an extra one makes it bigger.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bareImports, dependencyClosure, resolveInLock, type LockPackage } from '../../../local/src/images/deps.ts';
import { readInputs, repoRoot } from '../../../local/src/images/build.ts';
import { IMAGE_SPECS } from '../../../local/src/images/keys.ts';

describe('images: dependencies an image needs', function () {
  it('finds bare imports: static, dynamic, type-only, deep and scoped; not node: or relative', function () {
    const src = [
      "import { a } from 'pino';",
      "import type { B } from '@kubernetes/client-node';",
      "export * from \"smtp-server/lib/smtp-stream.js\";",
      "const m = await import('js-yaml');",
      "import './side-effect.ts';",
      "import { x } from '../y.ts';",
      "import { readFileSync } from 'node:fs';",
      "import 'prom-client';",
      'import {',
      '  one,',
      '  two,',
      "} from 'undici';",
      "const cjs = require.resolve('nodemailer');",
    ].join('\n');
    assert.deepEqual(bareImports(src), ['@kubernetes/client-node', 'js-yaml', 'nodemailer', 'pino', 'prom-client', 'smtp-server', 'undici']);
  });

  it('does not take ordinary code or text for an import', function () {
    const src = [
      "export const toClientModel = (obj) => renameInRules(obj, 'from', '_from');",
      "const msg = `copied from ${'x'}`; log('moved from ' + 'there');",
      "// import something from 'a-comment' is not at a line start here: x = 1; import('./local.ts');",
      "throw new Error(`cannot import from 'nowhere'`);",
      "const s = 'import x from \\'quoted\\'';",
    ].join('\n');
    assert.deepEqual(bareImports(src), []);
  });

  const lock: Record<string, LockPackage> = {
    '': { dependencies: { a: '1', c: '1' } },
    'node_modules/a': { dependencies: { b: '2' } },
    'node_modules/a/node_modules/b': { dependencies: { d: '1' } },
    'node_modules/b': { dependencies: {} },
    'node_modules/c': { dependencies: { b: '1' }, optionalDependencies: { gone: '1' }, peerDependencies: { e: '1' } },
    'node_modules/d': {},
    'node_modules/e': {},
    'node_modules/unused': {},
  };

  it('resolves as Node does: the nearest node_modules first, then up', function () {
    assert.equal(resolveInLock(lock, 'node_modules/a', 'b'), 'node_modules/a/node_modules/b');
    assert.equal(resolveInLock(lock, 'node_modules/c', 'b'), 'node_modules/b');
    assert.equal(resolveInLock(lock, 'node_modules/a/node_modules/b', 'd'), 'node_modules/d');
    assert.equal(resolveInLock(lock, '', 'nope'), undefined);
  });

  it('takes the closure, with peers present and optional ones missing, nothing unused', function () {
    assert.deepEqual(dependencyClosure(lock, ['a']), ['node_modules/a', 'node_modules/a/node_modules/b', 'node_modules/d']);
    assert.deepEqual(dependencyClosure(lock, ['c']), ['node_modules/b', 'node_modules/c', 'node_modules/e']);
  });

  it('refuses an import or a required dependency the lock does not have', function () {
    assert.throws(() => dependencyClosure(lock, ['nope']), /nope is imported but not in package-lock.json/);
    assert.throws(() => dependencyClosure({ ...lock, 'node_modules/d': { dependencies: { zz: '1' } } }, ['a']), /needs zz/);
  });

  it('on this repository: the node image needs no Kubernetes client, the operator no SMTP library, neither a dev-only package', function () {
    const packages = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')).packages as Record<string, LockPackage>;
    const closure = (name: string) => {
      const spec = IMAGE_SPECS.find((s) => s.name === name)!;
      const roots = readInputs(repoRoot, spec.inputs).filter((f) => f.path.endsWith('.ts') || f.path.endsWith('.js'))
        .flatMap((f) => bareImports(Buffer.from(f.content).toString('utf8')));
      return dependencyClosure(packages, [...new Set(roots)]);
    };
    const node = closure('node');
    const operator = closure('operator');
    for (const p of ['node_modules/smtp-server', 'node_modules/nodemailer', 'node_modules/pino', 'node_modules/prom-client']) assert.ok(node.includes(p), p);
    assert.ok(!node.includes('node_modules/@kubernetes/client-node'));
    assert.ok(operator.includes('node_modules/@kubernetes/client-node') && operator.includes('node_modules/js-yaml'));
    assert.ok(!operator.includes('node_modules/smtp-server') && !operator.includes('node_modules/nodemailer'));
    for (const p of [...node, ...operator]) assert.ok(!packages[p].dev, `${p} is dev-only`);
  });
});
