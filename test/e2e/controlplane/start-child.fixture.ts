// A child process for the parent-death tests: starts real etcd and kube-apiserver the way
// the control plane does (startComponent) and prints their pids as one JSON line. Mode
// `attached` (default) then waits to be killed (the test SIGKILLs it, as a crashed test
// runner would be); mode `detached` starts them with dieWithParent false, records them in
// DIR/state.json as startControlPlane does, and exits.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureControlPlaneBinaries } from '../../../local/src/controlplane/build.ts';
import { waitHealthy, freePort } from '../../../local/src/controlplane/health.ts';
import { apiServerArgs } from '../../../local/src/controlplane/flags.ts';
import { ensurePki } from '../../../local/src/controlplane/pki.ts';
import { startComponent } from '../../../local/src/controlplane/supervise.ts';

const [dir, mode = 'attached'] = process.argv.slice(2);
if (!dir) throw new Error('usage: start-child.fixture.ts DIR [attached|detached]');
const dieWithParent = mode !== 'detached';
const binaries = await ensureControlPlaneBinaries({ log: () => {} });
const [client, peer, api] = [await freePort(), await freePort(), await freePort()];
const etcd = startComponent({
  name: 'etcd', command: binaries.etcd, logFile: join(dir, 'etcd.log'), dieWithParent,
  args: [`--data-dir=${join(dir, 'etcd')}`, `--listen-client-urls=http://127.0.0.1:${client}`, `--advertise-client-urls=http://127.0.0.1:${client}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`, `--initial-cluster=default=http://127.0.0.1:${peer}`],
});
await waitHealthy({ url: `http://127.0.0.1:${client}/health`, timeoutMs: 30_000, abort: etcd.exited });
// The API server only has to be running, not ready: what is tested is that it dies with us.
const apiserver = startComponent({
  name: 'kube-apiserver', command: binaries.kubeApiserver, logFile: join(dir, 'kube-apiserver.log'), dieWithParent,
  args: apiServerArgs({ pki: ensurePki(join(dir, 'pki'), '10.0.0.1'), port: api, etcdUrl: `http://127.0.0.1:${client}`, serviceClusterIPRange: '10.0.0.0/16', certDir: join(dir, 'certs') }),
});
const pids = { etcd: etcd.pid, kubeApiserver: apiserver.pid };
if (!dieWithParent) {
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ pids: Object.values(pids) }) + '\n');
  process.stdout.write(JSON.stringify(pids) + '\n', () => process.exit(0));
} else {
  process.stdout.write(JSON.stringify(pids) + '\n');
}
// Bounded: the test kills us long before this.
setTimeout(() => process.exit(0), 60_000);
