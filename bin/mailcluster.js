#!/usr/bin/env node
// Entry shim, plain JavaScript so that it runs on any Node. The project needs Node 24
// (type stripping, @kubernetes/client-node 2.x); where the Node that started us is older,
// re-run the same command on the Node 24 that `npm install` placed in node_modules.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = join(here, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error(`mailcluster needs Node 24 (this is ${process.version}); run \`npm install\` first, which brings Node 24 as a devDependency`);
    process.exit(1);
  }
  const result = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
await import('./cli.ts');
