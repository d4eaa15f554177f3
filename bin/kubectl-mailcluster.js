#!/usr/bin/env node
// `kubectl mailcluster ...` (kubectl finds plugins as `kubectl-<name>` on the PATH; npm
// installs this file under that name). Plain JavaScript so that it runs on any Node: where
// the Node that started us is older than 24, re-run on the Node 24 that `npm install`
// placed in node_modules (the plugin is TypeScript run by Node 24's type stripping).
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = realpathSync(fileURLToPath(import.meta.url));
const here = dirname(self);
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = join(here, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error(`kubectl-mailcluster needs Node 24 (this is ${process.version}); run \`npm install\` in ${join(here, '..')} first, which brings Node 24 as a devDependency`);
    process.exit(1);
  }
  const result = spawnSync(pinned, [self, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
const { main } = await import('../ops/src/kubectl-plugin.ts');
await main(process.argv.slice(2));
