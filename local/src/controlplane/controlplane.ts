// startControlPlane: etcd, kube-apiserver and kube-controller-manager as local processes,
// all state (PKI, etcd data, kubeconfigs, logs) under one directory.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureControlPlaneBinaries, type ControlPlaneBinaries } from './build.ts';
import { apiServerArgs, controllerManagerArgs, etcdArgs, firstServiceIP } from './flags.ts';
import { freePort, portIsFree, waitHealthy, type TlsClient } from './health.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { ensurePki, issueClientCertificate, type ControlPlanePki } from './pki.ts';
import { logTail, processAlive, startComponent, type Component } from './supervise.ts';

export interface StartControlPlaneOptions {
  /** State directory (created): pki/, etcd/, logs/, kubeconfigs, state.json. */
  dir: string;
  /** The programs; default `await ensureControlPlaneBinaries()` (builds once, then cached). */
  binaries?: ControlPlaneBinaries;
  /** Default 10.0.0.0/16. In local mode ClusterIPs are routed (kube-proxy) inside the node's namespace only, not on the host. */
  serviceClusterIPRange?: string;
  /** API server port on 127.0.0.1; default the one this dir used before if free, else a free one. */
  apiServerPort?: number;
  /** Per component start timeout; default 120 s (the first start on a busy 2-core machine is slow). */
  startTimeoutMs?: number;
  /** Skip etcd's fsync: faster, but a machine crash may lose the cluster state. Default false. */
  etcdUnsafeNoFsync?: boolean;
  /** Appended to each program's flags (later flags win). */
  extraEtcdArgs?: string[];
  extraApiServerArgs?: string[];
  extraControllerManagerArgs?: string[];
  /** Kill the components when this process dies (default true). */
  dieWithParent?: boolean;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

export interface KubeconfigRequest {
  /** File name stem and kubeconfig context name: letters, digits, '.', '_', '-'. */
  name: string;
  /** The Kubernetes user name (certificate CN), e.g. `system:node:local`. */
  user: string;
  /** Its groups (certificate O), e.g. `['system:nodes']`. */
  groups?: string[];
}

export interface ControlPlane {
  dir: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Admin kubeconfig (user kubernetes-admin, group system:masters). */
  kubeconfigPath: string;
  /** The cluster CA (PEM file): the API server's certificate is signed by it. */
  caFile: string;
  pki: ControlPlanePki;
  binaries: ControlPlaneBinaries;
  logFiles: { etcd: string; kubeApiserver: string; kubeControllerManager: string };
  /** Current process ids (the API server's changes on restart). */
  pids(): { etcd: number; kubeApiserver: number; kubeControllerManager: number };
  /** A kubeconfig for another identity, signed by the cluster CA (client certificate). */
  createKubeconfig(req: KubeconfigRequest): string;
  /** Runs the built kubectl with the admin kubeconfig. Rejects on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** Stops the API server (SIGTERM) and starts it again on the same port; resolves when ready. */
  restartApiServer(): Promise<void>;
  /** Stops everything (SIGTERM, then SIGKILL) and waits until every process has exited. */
  stop(): Promise<void>;
}

interface SavedState {
  apiServerPort?: number;
  etcdClientPort?: number;
  etcdPeerPort?: number;
  controllerManagerPort?: number;
  pids?: number[];
}

const STOP_GRACE_MS = 10_000;
// kube-apiserver waits up to a minute for open watches to end after SIGTERM; nothing in a
// local cluster needs that, and etcd has everything the API server acknowledged.
const API_SERVER_STOP_GRACE_MS = 3_000;

export async function startControlPlane(opts: StartControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[controlplane] ${line}\n`));
  const dir = resolve(opts.dir);
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const range = opts.serviceClusterIPRange ?? '10.0.0.0/16';
  const binaries = opts.binaries ?? (await ensureControlPlaneBinaries({ log }));
  mkdirSync(join(dir, 'logs'), { recursive: true });

  const statePath = join(dir, 'state.json');
  const saved = readState(statePath);
  // A control plane left running in this dir (its parent was killed before the watchdog
  // signal, or dieWithParent was off) holds etcd's data lock: end it first.
  await killLeftovers(saved.pids ?? [], dir, log);

  const started = Date.now();
  const pki = ensurePki(join(dir, 'pki'), firstServiceIP(range));
  const logFiles = {
    etcd: join(dir, 'logs', 'etcd.log'),
    kubeApiserver: join(dir, 'logs', 'kube-apiserver.log'),
    kubeControllerManager: join(dir, 'logs', 'kube-controller-manager.log'),
  };
  const ports = {
    etcdClient: await reusePort(saved.etcdClientPort),
    etcdPeer: await reusePort(saved.etcdPeerPort),
    apiServer: opts.apiServerPort ?? (await reusePort(saved.apiServerPort)),
    controllerManager: await reusePort(saved.controllerManagerPort),
  };
  let server = '';
  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  const controllerManagerKubeconfig = join(dir, 'kube-controller-manager.kubeconfig');
  const writeKubeconfigs = () => {
    server = `https://127.0.0.1:${ports.apiServer}`;
    writeKubeconfig(kubeconfigPath, { name: 'mailcluster-local', server, caFile: pki.caCert, certFile: pki.adminCert, keyFile: pki.adminKey });
    writeKubeconfig(controllerManagerKubeconfig, {
      name: 'mailcluster-local', server, caFile: pki.caCert, certFile: pki.controllerManagerCert, keyFile: pki.controllerManagerKey,
    });
  };
  const adminTls: TlsClient = { ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey) };
  const components: { etcd?: Component; apiServer?: Component; controllerManager?: Component } = {};
  const saveState = () =>
    writeFileSync(
      statePath,
      JSON.stringify({
        apiServerPort: ports.apiServer,
        etcdClientPort: ports.etcdClient,
        etcdPeerPort: ports.etcdPeer,
        controllerManagerPort: ports.controllerManager,
        pids: Object.values(components).filter((c) => c?.running()).map((c) => c!.pid),
      } satisfies SavedState, null, 2) + '\n',
    );

  const expectedExits = new Set<Component>();
  const spawnComponent = (name: string, command: string, args: string[], logFile: string) => {
    const c = startComponent({ name, command, args, logFile, dieWithParent: opts.dieWithParent });
    saveState();
    void c.exited.then((exit) => {
      if (!expectedExits.has(c)) log(`${name} (pid ${c.pid}) exited unexpectedly (${exit.signal ?? `code ${exit.code}`}); see ${logFile}`);
    });
    return c;
  };
  const stopComponent = async (c: Component | undefined, graceMs: number) => {
    if (!c) return;
    expectedExits.add(c);
    await c.stop(graceMs);
  };
  const failure = (c: Component, err: unknown) => new Error(`${c.name} did not become healthy: ${(err as Error).message}\nlast lines of ${c.logFile}:\n${logTail(c.logFile)}`);

  const startApiServer = async () => {
    const c = spawnComponent('kube-apiserver', binaries.kubeApiserver, [
      ...apiServerArgs({ pki, port: ports.apiServer, etcdUrl: `http://127.0.0.1:${ports.etcdClient}`, serviceClusterIPRange: range, certDir: join(dir, 'kube-apiserver-certs') }),
      ...(opts.extraApiServerArgs ?? []),
    ], logFiles.kubeApiserver);
    components.apiServer = c;
    try {
      await waitHealthy({ url: `${server}/readyz`, tls: adminTls, timeoutMs, abort: c.exited });
    } catch (err) {
      throw failure(c, err);
    }
  };

  const stopAll = async () => {
    await stopComponent(components.controllerManager, STOP_GRACE_MS);
    await stopComponent(components.apiServer, API_SERVER_STOP_GRACE_MS);
    await stopComponent(components.etcd, STOP_GRACE_MS);
    saveState();
  };

  const startAll = async () => {
    log(`starting etcd on 127.0.0.1:${ports.etcdClient}`);
    const etcd = spawnComponent('etcd', binaries.etcd, [
      ...etcdArgs({ dataDir: join(dir, 'etcd'), clientPort: ports.etcdClient, peerPort: ports.etcdPeer, unsafeNoFsync: opts.etcdUnsafeNoFsync ?? false }),
      ...(opts.extraEtcdArgs ?? []),
    ], logFiles.etcd);
    components.etcd = etcd;
    try {
      // etcd fails at once when its ports are taken: look only after that moment, so that
      // another etcd on the same port is never mistaken for ours.
      await new Promise((r) => setTimeout(r, 300));
      await waitHealthy({
        url: `http://127.0.0.1:${ports.etcdClient}/health`, timeoutMs, abort: etcd.exited,
        accept: (body) => /"health"\s*:\s*"true"/.test(body),
      });
      if (!etcd.running()) throw new Error('exited');
    } catch (err) {
      throw failure(etcd, err);
    }

    log(`starting kube-apiserver on ${server}`);
    await startApiServer();

    log(`starting kube-controller-manager (healthz on 127.0.0.1:${ports.controllerManager})`);
    const cm = spawnComponent('kube-controller-manager', binaries.kubeControllerManager, [
      ...controllerManagerArgs({ pki, kubeconfig: controllerManagerKubeconfig, port: ports.controllerManager, certDir: join(dir, 'kube-controller-manager-certs'), serviceClusterIPRange: range }),
      ...(opts.extraControllerManagerArgs ?? []),
    ], logFiles.kubeControllerManager);
    components.controllerManager = cm;
    try {
      await waitHealthy({ url: `https://127.0.0.1:${ports.controllerManager}/healthz`, tls: { insecure: true }, timeoutMs, abort: cm.exited });
      // Pods cannot be created in a namespace before its `default` ServiceAccount exists
      // (ServiceAccount admission); the controller-manager makes it within moments.
      await waitHealthy({ url: `${server}/api/v1/namespaces/default/serviceaccounts/default`, tls: adminTls, timeoutMs, abort: cm.exited });
    } catch (err) {
      throw failure(cm, err);
    }
  };

  // A port found free can be taken before the program binds it (several control planes
  // starting at once): then start again on fresh ports.
  for (let attempt = 1; ; attempt++) {
    writeKubeconfigs();
    try {
      await startAll();
      break;
    } catch (err) {
      await stopAll();
      if (attempt >= 3 || !portTaken(err)) throw err;
      log(`a port was taken (${(err as Error).message.split('\n')[0]}); starting again on fresh ports`);
      ports.etcdClient = await freePort();
      ports.etcdPeer = await freePort();
      if (opts.apiServerPort === undefined) ports.apiServer = await freePort();
      ports.controllerManager = await freePort();
    }
  }
  log(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s: KUBECONFIG=${kubeconfigPath}`);

  let stopping: Promise<void> | undefined;
  return {
    dir,
    server,
    kubeconfigPath,
    caFile: pki.caCert,
    pki,
    binaries,
    logFiles,
    pids: () => ({ etcd: components.etcd!.pid, kubeApiserver: components.apiServer!.pid, kubeControllerManager: components.controllerManager!.pid }),
    createKubeconfig(req) {
      if (req.name === 'admin' || req.name === 'kube-controller-manager') throw new Error(`kubeconfig name ${req.name} is the control plane's own`);
      const { certFile, keyFile } = issueClientCertificate(pki, req.name, req.user, req.groups ?? []);
      return writeKubeconfig(join(dir, `${req.name}.kubeconfig`), { name: 'mailcluster-local', server, caFile: pki.caCert, certFile, keyFile });
    },
    kubectl(args, kopts = {}) {
      return new Promise((resolvePromise, reject) => {
        const child = execFile(
          binaries.kubectl, args,
          { env: { ...process.env, KUBECONFIG: kubeconfigPath }, timeout: kopts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 },
          (err, stdout, stderr) => {
            if (err) reject(new Error(`kubectl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
            else resolvePromise({ stdout, stderr });
          },
        );
        if (kopts.input !== undefined) child.stdin?.end(kopts.input);
      });
    },
    async restartApiServer() {
      if (stopping) throw new Error('the control plane is stopping');
      log('restarting kube-apiserver');
      await stopComponent(components.apiServer, API_SERVER_STOP_GRACE_MS);
      // Its port is in the ephemeral range: while it was down, an outgoing connection may have
      // taken it as its local port. The kubeconfigs name the port, so wait for it, not another.
      for (let attempt = 1; ; attempt++) {
        try {
          await startApiServer();
          return;
        } catch (err) {
          if (attempt >= 10 || !portTaken(err)) throw err;
          log(`kube-apiserver's port ${ports.apiServer} is taken; trying again in 2 s`);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}

function readState(path: string): SavedState {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SavedState;
  } catch {
    return {};
  }
}

/** Whether a component failed to start because its port was taken (its log says so). */
function portTaken(err: unknown): boolean {
  return /address already in use/i.test((err as Error).message);
}

async function reusePort(previous: number | undefined): Promise<number> {
  if (previous && (await portIsFree(previous))) return previous;
  return freePort();
}

// Only processes whose command line names this dir are ours to end. They go in the reverse
// order of their start, one after the other (controller-manager, API server, etcd), as in
// stop(): etcd would otherwise wait for the API server's open streams to close.
async function killLeftovers(pids: number[], dir: string, log: (l: string) => void): Promise<number[]> {
  const commandLine = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  };
  const ours = pids.filter((pid) => processAlive(pid) && commandLine(pid).includes(dir));
  if (ours.length === 0) return [];
  log(`ending control-plane processes left running in ${dir}: ${ours.join(', ')}`);
  for (const pid of [...ours].reverse()) {
    const graceMs = commandLine(pid).includes('kube-apiserver') ? API_SERVER_STOP_GRACE_MS : STOP_GRACE_MS;
    signalGroup(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && processAlive(pid)) await new Promise((r) => setTimeout(r, 100));
    signalGroup(pid, 'SIGKILL');
  }
  return ours;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone.
    }
  }
}

/**
 * Ends a control plane that another process started in dir (for `mailcluster local down`):
 * SIGTERM, then SIGKILL after the grace period. Resolves with the pids it ended.
 */
export async function stopControlPlaneInDir(dir: string, log: (l: string) => void = () => {}): Promise<number[]> {
  const abs = resolve(dir);
  const state = readState(join(abs, 'state.json'));
  return killLeftovers(state.pids ?? [], abs, log);
}
