// `npm test`: sets up what the tests need on this machine, type-checks, then runs the suites
// with mocha. Extra arguments go to mocha: `npm test -- --grep ETRN`, or test files to run
// only those (`npm test -- test/unit/etrn/parse.test.ts`).
import { spawnSync } from 'node:child_process';
import { ensureDebianPackages, imageTools, kubeletNodeTools } from './prerequisites.ts';
import { ensureImages } from '../local/src/images/build.ts';
import { ensureControlPlaneBinaries } from '../local/src/controlplane/build.ts';
import { ensureHelm } from '../local/src/tools/helm.ts';
import { ensureNodeBinaries } from '../local/src/node/build.ts';

/**
 * Every suite; kept here, not in .mocharc.json, because mocha adds config specs to the files
 * given on the command line. The two e2e suites that need the machine's one kubelet node to
 * themselves (kubelet, local) go last: the shared kubelet cluster the others use is then
 * started once, not again after them.
 */
const allSuites = [
  'test/unit/**/*.test.ts', 'test/integration/**/*.test.ts',
  'test/e2e/!(kubelet|local)/**/*.test.ts', 'test/e2e/@(kubelet|local)/**/*.test.ts',
];

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(`npm test needs Node 24, found ${process.version}: run \`npm install\` first (it brings Node 24)`);
  process.exit(1);
}

try {
  ensureDebianPackages();
  // The e2e suites run on the real control plane and the chart tests need helm: build both
  // now from their pinned Go modules (once; cached afterwards), not inside a mocha hook's timeout.
  const binaries = await ensureControlPlaneBinaries();
  console.error(`control plane binaries (${binaries.source}): ${binaries.dir}`);
  const helm = await ensureHelm();
  console.error(`helm ${helm.version} (${helm.source}): ${helm.path}`);
  // the e2e suites that run pods (the shared kubelet cluster, test/e2e/kubelet, test/e2e/local)
  // run as root unless MAILCLUSTER_KUBELET_E2E=0: kubelet and containerd too (about 10 minutes
  // the first time, cached afterwards), the Debian tools the node and the image builds need,
  // and the images the pods run (built here, not inside the first suite's hook timeout)
  if (process.getuid?.() === 0 && process.env.MAILCLUSTER_KUBELET_E2E !== '0') {
    ensureDebianPackages(undefined, [...imageTools, ...kubeletNodeTools]);
    const node = await ensureNodeBinaries();
    console.error(`kubelet node binaries (${node.source}): ${node.dir}`);
    for (const image of await ensureImages()) console.error(`image ${image.ref}: ${image.archive}`);
  }
} catch (err) {
  console.error(`test set-up failed: ${(err as Error).message}`);
  process.exit(1);
}

const typecheck = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (typecheck.status !== 0) {
  console.error('type check failed (tsc -p tsconfig.json)');
  process.exit(1);
}

const args = process.argv.slice(2);
const namesFiles = args.some((a) => a.endsWith('.ts'));
const mocha = spawnSync(process.execPath, ['node_modules/mocha/bin/mocha.js', ...(namesFiles ? [] : allSuites), ...args], { stdio: 'inherit' });
process.exit(mocha.status ?? 1);
