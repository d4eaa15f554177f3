// A child process for the crash test: starts a control plane in argv[2], prints its pids as
// one JSON line, then waits to be killed (the test SIGKILLs it, as a crashed runner would be).
import { ensureControlPlaneBinaries } from '../../../local/src/controlplane/build.ts';
import { startControlPlane } from '../../../local/src/controlplane/controlplane.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: start-child.fixture.ts DIR');
const binaries = await ensureControlPlaneBinaries({ log: () => {} });
const cp = await startControlPlane({ dir, binaries, etcdUnsafeNoFsync: true, log: () => {} });
process.stdout.write(JSON.stringify(cp.pids()) + '\n');
// Bounded: the test kills us long before this.
setTimeout(() => void cp.stop().then(() => process.exit(0)), 120_000);
