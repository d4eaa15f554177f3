// A child process for the crash test: starts real etcd and kube-apiserver the way the
// control plane does (startComponent), prints their pids as one JSON line, then waits to be
// killed (the test SIGKILLs it, as a crashed test runner would be).
import { join } from 'node:path';
import { ensureControlPlaneBinaries } from '../../../local/src/controlplane/build.ts';
import { waitHealthy, freePort } from '../../../local/src/controlplane/health.ts';
import { apiServerArgs } from '../../../local/src/controlplane/flags.ts';
import { ensurePki } from '../../../local/src/controlplane/pki.ts';
import { startComponent } from '../../../local/src/controlplane/supervise.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: start-child.fixture.ts DIR');
const binaries = await ensureControlPlaneBinaries({ log: () => {} });
const [client, peer, api] = [await freePort(), await freePort(), await freePort()];
const etcd = startComponent({
  name: 'etcd', command: binaries.etcd, logFile: join(dir, 'etcd.log'),
  args: [`--data-dir=${join(dir, 'etcd')}`, `--listen-client-urls=http://127.0.0.1:${client}`, `--advertise-client-urls=http://127.0.0.1:${client}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`, `--initial-cluster=default=http://127.0.0.1:${peer}`],
});
await waitHealthy({ url: `http://127.0.0.1:${client}/health`, timeoutMs: 30_000, abort: etcd.exited });
// The API server only has to be running, not ready: what is tested is that it dies with us.
const apiserver = startComponent({
  name: 'kube-apiserver', command: binaries.kubeApiserver, logFile: join(dir, 'kube-apiserver.log'),
  args: apiServerArgs({ pki: ensurePki(join(dir, 'pki'), '10.0.0.1'), port: api, etcdUrl: `http://127.0.0.1:${client}`, serviceClusterIPRange: '10.0.0.0/16', certDir: join(dir, 'certs') }),
});
process.stdout.write(JSON.stringify({ etcd: etcd.pid, kubeApiserver: apiserver.pid }) + '\n');
// Bounded: the test kills us long before this.
setTimeout(() => process.exit(0), 60_000);
