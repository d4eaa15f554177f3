// Local mode's real node: containerd + runc + kubelet + kube-proxy in a network namespace
// that local mode creates (with a bridge for pods), kube-scheduler on the host, and a
// provisioner of local PersistentVolumes. The host and the namespace are joined only by the
// gateway (gateway.ts) over Unix sockets, so nothing outside the namespace binds anything but
// 127.0.0.0/8:
//   kubelet, kube-proxy, pods -> API server:  TCP listener in the namespace -> api.sock -> 127.0.0.1:<port>
//   API server -> kubelet (logs, exec), pods: egress selector `cluster` -> connect.sock (HTTP CONNECT)
//   host LoadBalancer (127.31.x) -> pods:     connect.sock (HTTP CONNECT)
//   pods -> a test's server on the host:      a second gateway listening inside -> its own socket -> host:port (exposeHost)
// stop() leaves the machine as it was: processes ended by pid, containers killed, mounts
// under the node's directories unmounted, the namespace deleted, cgroups and the host paths
// the kubelet and containerd insist on (/var/log/pods, ...) removed when they made them.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server, Socket } from 'node:net';
import { CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ControlPlane } from '../controlplane/index.ts';
import { firstServiceIP } from '../controlplane/flags.ts';
import { ensurePki, issueCertificate, issueClientCertificate } from '../controlplane/pki.ts';
import { freePort } from '../controlplane/health.ts';
import { superviseComponent, type SupervisedComponent } from '../controlplane/supervise.ts';
import { ensureNodeBinaries, type NodeBinaries } from './build.ts';
import {
  DEFAULT_NETWORK, apiServerExtraArgs, bridgeMac, containerdConfig, egressSelectorConfig, cniConfList, kubeProxyConfig, kubeSchedulerArgs, kubeletArgs, kubeletConfig,
  kubernetesEndpointSlice, nodeId, nodeLayout, type NodeLayout, type NodeNetwork,
} from './config.ts';
import { dialThroughGateway, serveHostBridge } from './gateway-client.ts';
import { ensurePauseImage, PAUSE_IMAGE } from './pause-image.ts';
import { LocalVolumeProvisioner } from './provisioner.ts';

const gatewayProgram = fileURLToPath(new URL('./gateway.ts', import.meta.url));
/** Paths outside the node's directories that the kubelet or containerd write to. */
const HOST_PATHS = ['/run/mailcluster-node', '/run/netns', '/var/lib/kubelet', '/var/log/pods', '/var/log/containers', '/var/lib/cni', '/run/containerd', '/etc/cni', '/opt/cni'];
const SHARED_PATHS = ['/run/mailcluster-node', '/run/netns'];
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface KubeletNodeOptions {
  /** local mode's state directory (the node uses <dir>/node). */
  dir: string;
  controlPlane: ControlPlane;
  log: Logger;
  nodeName?: string;
  /** OCI archives to import into containerd's k8s.io namespace (the node and operator images). */
  images?: string[];
  binaries?: NodeBinaries;
  /** Progress lines. */
  progress?: (line: string) => void;
}

/** What must exist before the API server starts: its extra flags name these files. */
export interface KubeletNodePrep {
  layout: NodeLayout;
  network: NodeNetwork;
  /** Extra kube-apiserver flags (egress selector, kubelet client certificate). */
  apiServerArgs: string[];
}

/**
 * Run before the control plane starts: the API server's extra flags name the egress selector
 * file and the client certificate it presents to the kubelet (made here, from the same PKI
 * that startControlPlane reuses).
 */
export function prepareKubeletNode(localDir: string, serviceClusterIPRange = '10.0.0.0/16'): KubeletNodePrep {
  const layout = nodeLayout(localDir);
  const network = nodeNetwork(localDir);
  if (network.serviceCIDR !== serviceClusterIPRange) network.serviceCIDR = serviceClusterIPRange;
  mkdirSync(layout.dir, { recursive: true });
  const pki = ensurePki(join(localDir, 'controlplane', 'pki'), firstServiceIP(serviceClusterIPRange));
  // system:masters: the API server may do anything on the kubelet (logs, exec, port-forward)
  const client = issueClientCertificate(pki, 'kube-apiserver-kubelet-client', 'kube-apiserver-kubelet-client', ['system:masters']);
  writeFileSync(layout.egressSelectorConfig, egressSelectorConfig(layout.connectSocket));
  return {
    layout, network,
    apiServerArgs: apiServerExtraArgs({ egressSelectorConfig: layout.egressSelectorConfig, kubeletClientCert: client.certFile, kubeletClientKey: client.keyFile, caFile: pki.caCert }),
  };
}

export function nodeNetwork(localDir: string): NodeNetwork {
  return { ...DEFAULT_NETWORK, netns: `mailcluster-${nodeId(localDir)}` };
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`);
  return r.stdout;
}

/** `cmd args` run in network namespace `netns` (nsenter execs it: the pid is the command's). */
function nsenterNet(netns: string, cmd: string, args: string[]): [string, string[]] {
  return ['nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args]];
}

function runAsync(cmd: string, args: string[], timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

export class KubeletNode {
  readonly nodeName: string;
  readonly layout: NodeLayout;
  readonly network: NodeNetwork;
  readonly #o: KubeletNodeOptions;
  readonly #log: Logger;
  readonly #components: SupervisedComponent[] = [];
  #binaries!: NodeBinaries;
  #apiBridge: Server | undefined;
  #provisioner: LocalVolumeProvisioner | undefined;
  #createdHostPaths: string[] = [];
  #netnsBefore = new Set<string>();
  #stopping: Promise<void> | undefined;
  #started = false;

  constructor(options: KubeletNodeOptions) {
    this.#o = options;
    this.nodeName = options.nodeName ?? 'local-node';
    this.layout = nodeLayout(options.dir);
    this.network = nodeNetwork(options.dir);
    this.#log = options.log.child({ component: 'kubelet-node', node: this.nodeName });
  }

  /** Every process the node runs itself (the containers run under containerd's shims). */
  get pids(): number[] {
    return this.#components.filter((c) => c.running()).map((c) => c.pid);
  }

  /** A connection to an address inside the node's namespace (for the LoadBalancer). */
  dial = (backend: { address: string; port: number }): Promise<Socket> => dialThroughGateway(this.layout.connectSocket, backend.address, backend.port);

  /** Runs a command inside the node's network namespace (tests start peers there). */
  netnsCommand(cmd: string, args: string[]): [string, string[]] {
    return nsenterNet(this.network.netns, cmd, args);
  }

  /**
   * Puts `address` (inside the pod network, below the pods' range: 10.244.0.x) on the bridge,
   * for a test peer started inside the namespace with netnsCommand. Idempotent.
   */
  addPeerAddress(address: string): void {
    const n = this.network;
    const prefix = n.podCIDR.split('/')[1];
    const r = spawnSync('ip', ['-n', n.netns, 'addr', 'add', `${address}/${prefix}`, 'dev', n.bridge], { encoding: 'utf8' });
    if (r.status !== 0 && !/File exists/.test(r.stderr)) throw new Error(`ip addr add ${address}: ${r.stderr.trim()}`);
  }

  /**
   * Makes a server on the host's loopback (a test's in-process SMTP server) reachable from
   * the pods at `inside` (a peer address, see addPeerAddress) and the same port: a gateway
   * listens there inside the namespace and hands each connection over a Unix socket to the
   * host, which connects to host:port. Stopped with the node, or by the returned stop().
   */
  async exposeHost(host: string, port: number, inside: string): Promise<{ address: string; port: number; stop(): Promise<void> }> {
    this.addPeerAddress(inside);
    const name = `expose-${inside}-${port}`;
    const socketPath = join(this.layout.runDir, `${name}.sock`);
    const bridge = await serveHostBridge(socketPath, host, port);
    const gateway = this.#spawn(name, ...this.netnsCommand(process.execPath, [gatewayProgram, '--forward-socket', socketPath, '--forward-listen', `${inside}:${port}`]));
    const deadline = Date.now() + 15_000;
    for (;;) {
      const s = await this.dial({ address: inside, port }).catch(() => undefined);
      s?.destroy();
      if (s) break;
      if (!gateway.running() || Date.now() > deadline) {
        bridge.close();
        throw new Error(`${name} did not listen inside the namespace; see ${gateway.logFile}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      address: inside,
      port,
      stop: async () => {
        // gone on purpose: no longer one of the node's programs (whose exit is an error)
        this.#components.splice(this.#components.indexOf(gateway), 1);
        await gateway.stop(5_000);
        bridge.close();
        rmSync(socketPath, { force: true });
      },
    };
  }

  /**
   * A client that is not on the node: a namespace of its own (`<node netns>-out`) joined to
   * the node's by a veth pair, on the outside network (10.245.0.2; the node's side .1), its
   * default route through the node. Its packets reach the node routed, as a client's do
   * through a cloud's pass-through load balancer, so kube-proxy treats them as external
   * (externalTrafficPolicy: Local keeps their source). Made once; deleted with the node.
   */
  outsideClient(): { address: string; command(cmd: string, args: string[]): [string, string[]] } {
    const n = this.network;
    const ns = `${n.netns}-out`;
    const [base, prefix] = n.outsideCIDR.split('/');
    const octets = base.split('.').map(Number);
    const at = (i: number) => [...octets.slice(0, 3), octets[3] + i].join('.');
    if (!existsSync(`/run/netns/${ns}`)) {
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', ns, 'link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'out1', 'netns', n.netns]);
      run('ip', ['-n', ns, 'addr', 'add', `${at(2)}/${prefix}`, 'dev', 'out0']);
      run('ip', ['-n', ns, 'link', 'set', 'out0', 'up']);
      run('ip', ['-n', n.netns, 'addr', 'add', `${at(1)}/${prefix}`, 'dev', 'out1']);
      run('ip', ['-n', n.netns, 'link', 'set', 'out1', 'up']);
      run('ip', ['-n', ns, 'route', 'add', 'default', 'via', at(1)]);
    }
    return { address: at(2), command: (cmd, args) => nsenterNet(ns, cmd, args) };
  }

  /** Gives an imported image a second name (a test rolls to a "new" image that needs no registry). */
  async tagImage(source: string, target: string): Promise<void> {
    const full = (ref: string) => (ref.includes('/') && ref.split('/')[0].includes('.') ? ref : `docker.io/${ref.includes('/') ? ref : `library/${ref}`}`);
    await this.#ctr(['-n', 'k8s.io', 'images', 'tag', '--force', full(source), full(target)]);
  }

  /** The host pid of a container's main process (`containerd://<id>` as in the pod status). */
  async containerPid(containerID: string): Promise<number> {
    const id = containerID.replace(/^containerd:\/\//, '');
    const out = await this.#ctr(['-n', 'k8s.io', 'tasks', 'ls']);
    const [, pid, status] = out.split('\n').find((l) => l.startsWith(id))?.trim().split(/\s+/) ?? [];
    if (status !== 'RUNNING') throw new Error(`no running task ${id} in containerd${status ? ` (${status})` : ''}`);
    // A stopped task's pid may belong to another process by now (pid_max is 32768 here): the
    // pid is the container's only while its cgroup path names the container.
    const cgroups = (() => { try { return readFileSync(`/proc/${pid}/cgroup`, 'utf8'); } catch { return ''; } })();
    if (!cgroups.includes(id)) throw new Error(`pid ${pid} is not in container ${id}'s cgroup`);
    return Number(pid);
  }

  #progress(line: string): void {
    this.#log.info(line);
    this.#o.progress?.(line);
  }

  async start(): Promise<void> {
    const l = this.layout;
    const n = this.network;
    const cp = this.#o.controlPlane;
    this.#preflight();
    this.#binaries = this.#o.binaries ?? await ensureNodeBinaries({ log: (line) => this.#progress(line) });
    const pauseArchive = ensurePauseImage(this.#binaries.pause, this.#binaries.dir);
    this.#createdHostPaths = HOST_PATHS.filter((p) => !existsSync(p));
    for (const d of [l.dir, l.logs, l.runDir, l.cniConfDir, l.cniDataDir, l.kubeletRoot, l.volumes, join(l.dir, 'containerd')]) mkdirSync(d, { recursive: true });
    this.#netnsBefore = new Set(existsSync('/run/netns') ? readdirSync('/run/netns') : []);

    this.#removeLeftovers();
    this.#progress(`network namespace ${n.netns}: bridge ${n.bridge} ${n.nodeIP}, pods ${n.podCIDR}, services ${n.serviceCIDR}`);
    this.#makeNetwork();

    // the API server, reachable inside the namespace on the same port as on the host loopback
    const apiPort = Number(new URL(cp.server).port);
    this.#apiBridge = await serveHostBridge(l.apiSocket, '127.0.0.1', apiPort);
    this.#spawn('node-gateway', ...this.netnsCommand(process.execPath, [gatewayProgram,
      '--connect-socket', l.connectSocket, '--forward-socket', l.apiSocket,
      '--forward-listen', `127.0.0.1:${apiPort}`, '--forward-listen', `${n.nodeIP}:${apiPort}`]));
    await this.#waitFor('the gateway', () => existsSync(l.connectSocket), 15_000);

    writeFileSync(l.containerdConfig, containerdConfig(l, { shimDir: this.#binaries.dir, sandboxImage: PAUSE_IMAGE, runc: '/usr/sbin/runc' }));
    writeFileSync(join(l.cniConfDir, '10-mailcluster.conflist'), cniConfList(n, l));
    writeFileSync(l.resolvConf, '# pods of local mode resolve nothing by default (no cluster DNS)\n');
    this.#progress('starting containerd');
    this.#spawn('containerd', ...this.netnsCommand(this.#binaries.containerd, ['--config', l.containerdConfig]), { PATH: `${this.#binaries.dir}:${process.env.PATH}` });
    await this.#waitFor('containerd', async () => existsSync(l.containerdSocket) && (await this.#ctr(['version']).then(() => true, () => false)), 60_000);
    for (const archive of [pauseArchive, ...(this.#o.images ?? [])]) {
      const started = Date.now();
      await this.#ctr(['-n', 'k8s.io', 'images', 'import', '--no-unpack=false', archive], 600_000);
      this.#progress(`imported ${archive} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }

    // certificates and kubeconfigs from the control plane's PKI
    const kubeletKubeconfig = cp.createKubeconfig({ name: `kubelet-${this.nodeName}`, user: `system:node:${this.nodeName}`, groups: ['system:nodes'] });
    const serving = issueCertificate(cp.pki.dir, `kubelet-serving-${this.nodeName}`, {
      commonName: `system:node:${this.nodeName}`, organizations: ['system:nodes'], usage: ['serverAuth'],
      dnsNames: [this.nodeName], ipAddresses: [n.nodeIP],
    }, 'ca');
    writeFileSync(l.kubeletConfig, kubeletConfig(n, l, { caFile: cp.caFile, servingCert: serving.certFile, servingKey: serving.keyFile }));
    this.#makeCgroupRoot();
    this.#progress('starting kubelet');
    this.#spawn('kubelet', ...this.netnsCommand(this.#binaries.kubelet, kubeletArgs(n, l, { kubeconfig: kubeletKubeconfig, nodeName: this.nodeName })));

    const proxyKubeconfig = cp.createKubeconfig({ name: 'kube-proxy', user: 'system:kube-proxy' });
    writeFileSync(l.kubeProxyConfig, kubeProxyConfig(n, { kubeconfig: proxyKubeconfig, nodeName: this.nodeName }));
    this.#spawn('kube-proxy', ...this.netnsCommand(this.#binaries.kubeProxy, [`--config=${l.kubeProxyConfig}`, '--v=1']));

    const schedulerKubeconfig = cp.createKubeconfig({ name: 'kube-scheduler', user: 'system:kube-scheduler' });
    this.#spawn('kube-scheduler', this.#binaries.kubeScheduler, kubeSchedulerArgs({ kubeconfig: schedulerKubeconfig, port: await freePort(), certDir: join(l.dir, 'kube-scheduler-certs') }));

    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    await this.#publishApiEndpoint(kc, apiPort);
    this.#provisioner = new LocalVolumeProvisioner({ kubeConfig: kc, volumesDir: l.volumes, nodeName: this.nodeName, log: this.#o.log });
    await this.#provisioner.start();

    const core = kc.makeApiClient(CoreV1Api);
    await this.#waitFor(`node ${this.nodeName} Ready`, async () => {
      const node = await core.readNode({ name: this.nodeName }).catch(() => undefined);
      return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    }, 180_000);
    this.#progress(`node ${this.nodeName} is Ready (${n.nodeIP})`);
    this.#started = true;
  }

  #preflight(): void {
    if (process.getuid?.() !== 0) throw new Error('the kubelet node needs root (network namespaces, mounts, cgroups)');
    for (const p of ['/usr/sbin/runc', '/usr/lib/cni/bridge', '/usr/lib/cni/host-local', '/usr/lib/cni/portmap']) {
      if (!existsSync(p)) throw new Error(`${p} is missing: apt-get install runc containernetworking-plugins`);
    }
  }

  #makeNetwork(): void {
    const n = this.network;
    const ns = n.netns;
    if (existsSync(`/run/netns/${ns}-out`)) run('ip', ['netns', 'del', `${ns}-out`]);
    if (existsSync(`/run/netns/${ns}`)) run('ip', ['netns', 'del', ns]);
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', ns, 'link', 'add', n.bridge, 'address', bridgeMac(n.nodeIP), 'type', 'bridge']);
    const prefix = n.podCIDR.split('/')[1];
    for (const a of [n.nodeIP, ...n.spareAddresses]) run('ip', ['-n', ns, 'addr', 'add', `${a}/${prefix}`, 'dev', n.bridge]);
    run('ip', ['-n', ns, 'link', 'set', n.bridge, 'up']);
    // per-namespace sysctls: forwarding between pods, bridged traffic through iptables (Services)
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=1']);
  }

  async #publishApiEndpoint(kc: KubeConfig, port: number): Promise<void> {
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const body = kubernetesEndpointSlice(this.network, port) as never;
    try {
      await discovery.createNamespacedEndpointSlice({ namespace: 'default', body });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
      await discovery.replaceNamespacedEndpointSlice({ name: 'kubernetes', namespace: 'default', body });
    }
  }

  /** Starts one of the node's programs; one that dies on its own is started again (as systemd does on a node). */
  #spawn(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): SupervisedComponent {
    const c: SupervisedComponent = superviseComponent({ name, command, args, logFile: join(this.layout.logs, `${name}.log`), env: { ...process.env, ...env } }, {
      // while starting, a program that dies fails start() with its log named (#waitFor) instead
      shouldRestart: () => this.#started && !this.#stopping && this.#components.includes(c),
      onRestart: (exit, restart, delayMs) => this.#log.error({ exit, log: c.logFile, restart, delayMs }, `${name} exited unexpectedly; starting it again`),
    });
    this.#components.push(c);
    return c;
  }

  /** The node's own programs (node-gateway, containerd, kubelet, kube-proxy, kube-scheduler, exposures): pid now, and how often each was started again after dying. */
  programs(): Array<{ name: string; pid: number; running: boolean; restarts: number }> {
    return this.#components.map((c) => ({ name: c.name, pid: c.pid, running: c.running(), restarts: c.restarts }));
  }

  #ctr(args: string[], timeoutMs = 30_000): Promise<string> {
    return runAsync(this.#binaries.ctr, ['--address', this.layout.containerdSocket, ...args], timeoutMs);
  }

  async #waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, failOnExit = true): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check()) return;
      const dead = failOnExit && this.#components.find((c) => !c.running());
      if (dead) throw new Error(`${dead.name} exited while waiting for ${what}; see ${dead.logFile}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; logs in ${this.layout.logs}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const l = this.layout;
    const byName = (name: string) => this.#components.find((c) => c.name === name);
    await this.#provisioner?.stop();
    for (const name of ['kube-scheduler', 'kube-proxy', 'kubelet']) await byName(name)?.stop(10_000);
    // the kubelet leaves its containers running: end them through containerd, then containerd
    if (byName('containerd')?.running()) {
      try {
        const tasks = (await this.#ctr(['-n', 'k8s.io', 'tasks', 'ls', '-q'])).split('\n').filter(Boolean);
        await Promise.all(tasks.map((t) => this.#ctr(['-n', 'k8s.io', 'tasks', 'kill', '-a', '-s', 'SIGKILL', t]).catch(() => undefined)));
        // dead once containerd reports none RUNNING; their shims and mounts go below
        await this.#waitFor('the containers to die', async () => !/\sRUNNING\s*$/m.test(await this.#ctr(['-n', 'k8s.io', 'tasks', 'ls']).catch(() => '')), 15_000, false).catch(() => undefined);
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'could not list containers');
      }
    }
    await byName('containerd')?.stop(10_000);
    this.#killShims();
    for (const c of this.#components) await c.stop(5_000);
    this.#apiBridge?.close();
    this.#unmountUnder([l.kubeletRoot, l.containerdRoot, l.containerdState, l.runDir, '/var/lib/kubelet', '/run/containerd']);
    // sandbox namespaces our containerd made (and CNI could not tear down)
    for (const name of existsSync('/run/netns') ? readdirSync('/run/netns') : []) {
      if (this.#netnsBefore.has(name) || !name.startsWith('cni-')) continue;
      spawnSync('umount', ['-l', `/run/netns/${name}`]);
      rmSync(`/run/netns/${name}`, { force: true });
    }
    spawnSync('ip', ['netns', 'del', `${this.network.netns}-out`]);
    spawnSync('ip', ['netns', 'del', this.network.netns]);
    this.#removeCgroups();
    rmSync(l.runDir, { recursive: true, force: true });
    for (const p of this.#createdHostPaths) {
      if (SHARED_PATHS.includes(p)) {
        // others may use these too: removed only when nothing is left in them
        try { rmdirSync(p); } catch { /* not empty */ }
        continue;
      }
      this.#unmountUnder([p]);
      rmSync(p, { recursive: true, force: true });
    }
    this.#log.info('kubelet node stopped');
  }

  /**
   * What a previous run in this dir left when its process was killed (-9): the programs died
   * with it (parent-death signal), but the shims and their containers, mounts, the namespace
   * and the cgroup root did not.
   */
  #removeLeftovers(): void {
    this.#killShims();
    this.#unmountUnder([this.layout.kubeletRoot, this.layout.containerdRoot, this.layout.runDir]);
    this.#removeCgroups();
  }

  /** Shims of our containerd outlive it (they daemonize): they are ours when started with our socket. */
  #killShims(): void {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const exe = readlinkSync(`/proc/${entry}/exe`);
        if (exe !== this.#binaries?.shim) continue;
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (!cmdline.includes(this.layout.containerdSocket)) continue;
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // gone, or not ours to read
      }
    }
  }

  #unmountUnder(roots: string[]): void {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ')[4].replace(/\\040/g, ' '));
    const ours = mounts.filter((m) => roots.some((r) => m === r || m.startsWith(r + '/')));
    // deepest first
    for (const m of [...new Set(ours)].sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  }

  /** The kubelet wants its cgroupRoot to exist in every v1 hierarchy; cpuset needs cpus and mems. */
  #makeCgroupRoot(): void {
    const rel = this.layout.cgroupRoot.replace(/^\//, '');
    for (const controller of readdirSync(CGROUP_ROOT)) {
      const parent = join(CGROUP_ROOT, controller);
      if (!existsSync(join(parent, 'cgroup.procs'))) continue;
      const dir = join(parent, rel);
      mkdirSync(dir, { recursive: true });
      if (controller === 'cpuset') {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(dir, f), readFileSync(join(parent, f)));
      }
    }
  }

  #removeCgroups(): void {
    const rel = this.layout.cgroupRoot.replace(/^\//, '');
    // anything still in the node's cgroups (a container whose shim was killed) is ours to end
    const procsRoot = join(CGROUP_ROOT, 'pids', rel);
    const killAll = (d: string) => {
      try {
        for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
        }
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) killAll(join(d, e.name));
      } catch { /* vanished */ }
    };
    if (existsSync(procsRoot)) {
      killAll(procsRoot);
      spawnSync('sleep', ['0.5']);
    }
    for (const controller of existsSync(CGROUP_ROOT) ? readdirSync(CGROUP_ROOT) : []) {
      const top = join(CGROUP_ROOT, controller, rel);
      if (!existsSync(top)) continue;
      const dirs: string[] = [];
      const walk = (d: string) => {
        dirs.push(d);
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      };
      try { walk(top); } catch { /* vanished */ }
      for (const d of dirs.sort((a, b) => b.length - a.length)) {
        try { rmdirSync(d); } catch { /* busy or gone */ }
      }
    }
  }
}
