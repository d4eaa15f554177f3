// `mailcluster local up|down|status [--dir D]`: the embedded single-machine Kubernetes.
//   up      starts the control plane, the node (a real kubelet with containerd and runc in a
//           network namespace; needs root) and the load balancer, installs the operator with
//           the chart and applies examples/mailcluster.yaml, stays in the foreground until
//           Ctrl-C / SIGTERM, and writes <dir>/local-up.json (pid, kubeconfig, kubectl)
//   down    stops a running `up` through that state file
//   status  says whether an `up` runs in that dir and what the cluster holds
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The cluster and the Kubernetes client load lazily: `down` must not wait for them.
import type { LocalCluster } from './index.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const usage = `usage: mailcluster local up|down|status [--dir DIR] [--lb-range CIDR]
  up       start etcd, kube-apiserver, kube-controller-manager, the node (a real kubelet with
           containerd and runc in a network namespace, running the project's images; needs
           root; the first run builds kubelet, containerd and the images) and the load
           balancer; install the operator with the chart and run examples/mailcluster.yaml;
           stays in the foreground until Ctrl-C (SIGINT) or SIGTERM
  down     stop the \`up\` running in DIR
  status   show whether an \`up\` runs in DIR
  --dir DIR           state directory (default .local/ in the repository)
  --lb-range CIDR     LoadBalancer addresses, inside 127.0.0.0/8 (default 127.31.0.0/16)
  --etcd-no-fsync     faster etcd for throwaway clusters (a machine crash may lose the state)`;

export interface UpState {
  pid: number;
  dir: string;
  kubeconfig: string;
  server: string;
  kubectl: string;
  lbRange: string;
  startedAt: string;
}

interface Flags { command: string | undefined; dir: string; lbRange: string; etcdNoFsync: boolean }

export function parseLocalArgs(args: string[]): Flags {
  const flags: Flags = { command: undefined, dir: join(repoRoot, '.local'), lbRange: '127.31.0.0/16', etcdNoFsync: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = (name: string) => {
      const eq = arg.indexOf('=');
      if (eq >= 0) return arg.slice(eq + 1);
      const next = args[++i];
      if (next === undefined) throw new Error(`${name} needs a value`);
      return next;
    };
    if (arg === '--dir' || arg.startsWith('--dir=')) flags.dir = resolve(value('--dir'));
    else if (arg === '--lb-range' || arg.startsWith('--lb-range=')) flags.lbRange = value('--lb-range');
    else if (arg === '--etcd-no-fsync') flags.etcdNoFsync = true;
    else if (arg === '-h' || arg === '--help') flags.command = 'help';
    else if (!arg.startsWith('-') && flags.command === undefined) flags.command = arg;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}`);
  }
  return flags;
}

const statePath = (dir: string) => join(dir, 'local-up.json');

function readUpState(dir: string): UpState | undefined {
  try { return JSON.parse(readFileSync(statePath(dir), 'utf8')) as UpState; } catch { return undefined; }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch { return false; }
  try {
    // An exited process that its parent has not reaped yet is a zombie: it has ended.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

export async function main(args: string[]): Promise<void> {
  let flags: Flags;
  try {
    flags = parseLocalArgs(args);
  } catch (err) {
    console.error(`mailcluster local: ${(err as Error).message}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  switch (flags.command) {
    case 'up': return up(flags);
    case 'down': return down(flags);
    case 'status': return status(flags);
    case 'help': console.log(usage); return;
    default:
      console.error(flags.command ? `mailcluster local: unknown command ${JSON.stringify(flags.command)}\n${usage}` : usage);
      process.exitCode = 2;
  }
}

async function up(flags: Flags): Promise<void> {
  const previous = readUpState(flags.dir);
  if (previous && alive(previous.pid) && previous.pid !== process.pid) {
    console.error(`mailcluster local: already up in ${flags.dir} (pid ${previous.pid}); run \`mailcluster local down --dir ${flags.dir}\` first`);
    process.exitCode = 1;
    return;
  }
  const print = (line: string) => console.log(line);
  const started = Date.now();
  if (process.getuid?.() !== 0) {
    console.error('mailcluster local up needs root: its node is a real kubelet with containerd and runc, in a network namespace it creates (run it as root, e.g. `sudo npm start`)');
    process.exitCode = 1;
    return;
  }
  print(`starting local Kubernetes in ${flags.dir} (a kubelet node, load balancers ${flags.lbRange})...`);
  let cluster: LocalCluster;
  try {
    const { startLocalCluster } = await import('./index.ts');
    // the real node needs runc, the CNI plugins, iptables and podman for the images
    const { ensureDebianPackages, imageTools, kubeletNodeTools } = await import('../../scripts/prerequisites.ts');
    ensureDebianPackages((line) => print(`  ${line}`), [...imageTools, ...kubeletNodeTools]);
    // the node runs the project's images: build (or find) them first
    const images = (await (await import('./images/build.ts')).ensureImages({ log: (line) => print(`  ${line}`) })).map((i) => i.archive);
    cluster = await startLocalCluster({
      dir: flags.dir, lbRange: flags.lbRange, node: 'kubelet', images,
      controlPlaneLog: (line) => print(`  ${line}`),
      controlPlane: { etcdUnsafeNoFsync: flags.etcdNoFsync },
    });
  } catch (err) {
    console.error(`mailcluster local up failed: ${(err as Error).message}`);
    process.exitCode = 1;
    return;
  }
  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((r) => { markStopped = r; });
  const stop = (signal: string) => {
    stopping ??= (async () => {
      print(`\n${signal}: stopping pods, load balancers and the control plane...`);
      await cluster.stop();
      rmSync(statePath(flags.dir), { force: true });
      print('stopped.');
      markStopped();
    })();
    return stopping;
  };
  process.on('SIGINT', () => { void stop('SIGINT'); });
  process.on('SIGTERM', () => { void stop('SIGTERM'); });

  const state: UpState = {
    pid: process.pid, dir: flags.dir, kubeconfig: cluster.kubeconfigPath, server: cluster.server,
    kubectl: cluster.kubectlPath, lbRange: flags.lbRange, startedAt: new Date().toISOString(),
  };
  writeFileSync(statePath(flags.dir), JSON.stringify(state, null, 2) + '\n');

  try {
    await (await import('./node/up.ts')).installOperatorWithChart(cluster, print);
  } catch (err) {
    console.error(`mailcluster local up: a start-up step failed: ${(err as Error).message}`);
    await stop('error');
    process.exitCode = 1;
    return;
  }

  print(`
local Kubernetes is up (${((Date.now() - started) / 1000).toFixed(1)} s): API server ${cluster.server}
  export KUBECONFIG=${cluster.kubeconfigPath}
  ${cluster.kubectlPath} get nodes,pods -A        (the kubectl built with the control plane)
pods run on a kubelet in network namespace ${cluster.kubeletNode!.network.netns} (pods ${cluster.kubeletNode!.network.podCIDR}); kubectl logs/exec work
LoadBalancer Services get addresses in ${flags.lbRange}
logs: ${join(flags.dir, 'local.log')}, node programs: ${cluster.kubeletNode!.layout.logs}/
stop with Ctrl-C, or \`mailcluster local down --dir ${flags.dir}\``);
  // Stay in the foreground until a signal has stopped everything.
  await stopped;
  // Everything is stopped; an idle keep-alive socket must not hold the process up for long.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
}

async function down(flags: Flags): Promise<void> {
  const state = readUpState(flags.dir);
  if (!state || !alive(state.pid)) {
    console.log(`no local cluster is up in ${flags.dir}`);
    if (state) rmSync(statePath(flags.dir), { force: true });
    return;
  }
  console.log(`stopping the local cluster in ${flags.dir} (pid ${state.pid})...`);
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 90_000;
  while (alive(state.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(state.pid)) {
    console.error(`pid ${state.pid} is still running after 90 s; sending SIGKILL (its children die with it)`);
    process.kill(state.pid, 'SIGKILL');
  }
  rmSync(statePath(flags.dir), { force: true });
  console.log('stopped.');
}

async function status(flags: Flags): Promise<void> {
  const state = readUpState(flags.dir);
  if (!state || !alive(state.pid)) {
    console.log(`down: no local cluster is up in ${flags.dir}`);
    process.exitCode = 3;
    return;
  }
  console.log(`up: pid ${state.pid} since ${state.startedAt}\n  API server ${state.server}\n  export KUBECONFIG=${state.kubeconfig}\n  kubectl: ${state.kubectl}`);
  if (!existsSync(state.kubeconfig)) return;
  try {
    const { CoreV1Api, KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromFile(state.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const [nodes, pods, services] = await Promise.all([core.listNode(), core.listPodForAllNamespaces(), core.listServiceForAllNamespaces()]);
    const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    const running = pods.items.filter((p) => p.status?.phase === 'Running').length;
    console.log(`  nodes: ${nodes.items.length} (${ready} ready), pods: ${pods.items.length} (${running} running)`);
    for (const svc of services.items.filter((s) => s.spec?.type === 'LoadBalancer')) {
      const ip = svc.status?.loadBalancer?.ingress?.[0]?.ip ?? '(pending)';
      console.log(`  LoadBalancer ${svc.metadata?.namespace}/${svc.metadata?.name}: ${ip} ports ${(svc.spec?.ports ?? []).map((p) => p.port).join(',')}`);
    }
  } catch (err) {
    console.log(`  API server not answering: ${(err as Error).message}`);
  }
}
