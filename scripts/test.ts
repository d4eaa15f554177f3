// `npm test`: sets up what the tests need on this machine, then runs every suite with mocha.
// Extra arguments go to mocha (for example `npm test -- --grep ETRN`).
import { spawnSync } from 'node:child_process';
import { ensureDebianPackages } from './prerequisites.ts';
import { ensureControlPlaneBinaries } from '../local/src/controlplane/build.ts';
import { ensureHelm } from '../local/src/tools/helm.ts';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(`npm test needs Node 24, found ${process.version}: run \`npm install\` first (it brings Node 24)`);
  process.exit(1);
}

try {
  ensureDebianPackages();
} catch (err) {
  console.error(`test set-up failed: ${(err as Error).message}`);
  process.exit(1);
}

// The e2e suites run on the real control plane: build it now (once; cached afterwards)
// rather than inside a mocha hook's timeout.
try {
  const binaries = await ensureControlPlaneBinaries();
  console.error(`control plane binaries (${binaries.source}): ${binaries.dir}`);
} catch (err) {
  console.error(`test set-up failed: ${(err as Error).message}`);
  process.exit(1);
}

// The chart tests need helm, built from its pinned Go module (once; cached afterwards).
try {
  const helm = await ensureHelm();
  console.error(`helm ${helm.version} (${helm.source}): ${helm.path}`);
} catch (err) {
  console.error(`test set-up failed: ${(err as Error).message}`);
  process.exit(1);
}

const mocha = spawnSync(process.execPath, ['node_modules/mocha/bin/mocha.js', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(mocha.status ?? 1);
