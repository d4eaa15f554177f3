// `npm run bench:scale`: the operator at scale. 1,000 MailClusters x 3 replicas (by default)
// on a real control plane, hosted by Kubernetes' own scalability tooling instead of 3,000
// mail nodes:
//
// - the project's control plane (etcd, kube-apiserver, kube-controller-manager v1.36.3),
//   with an audit policy that logs the operator's requests (its own user) and client QPS
//   raised for the controller-manager (its PV binder binds one claim per pod);
// - a real kube-scheduler and kubemark hollow nodes (`--morph=kubelet`: the real kubelet over
//   a fake container runtime), both built from the pinned Go modules (ensureBenchTools);
// - statically provisioned PersistentVolumes, pre-created for every spool claim the
//   operator will make (StorageClass `bench-static`, hostPath, which the hollow kubelet's
//   fake hostPath plugin mounts without touching the disk) -- local mode's node (its kubelet
//   and its local-volume provisioner) is not used. The class binds for the first consumer
//   (WaitForFirstConsumer, as most cloud classes do): with Immediate, a pod created next to
//   its claim failed scheduling ("unbound immediate PersistentVolumeClaims") about 75 times
//   until the controller-manager had bound the claim, every claim's binding requeueing every
//   waiting pod (--immediate-binding brings that back, for comparison);
// - local mode's LoadBalancer controller (a 127.52.128.0/17 address per Service);
// - the operator as production runs it (`node bin/mailcluster.js operator`, leader election
//   on, metrics served), with `--max-concurrent-rollouts` when it has that flag.
//
// Stand-in: hollow pods run nothing, and every one of them reports the fake runtime's pod IP
// 192.168.192.168. A roll drains each pod through its admin port (POST /drain, then GET
// /queue until drained), so a small HTTP stand-in (admin-standin.ts) listens on
// 192.168.192.168:8025 and answers "drained, empty queue" for every pod. Nothing else of
// the nodes is stood in for: hollow pods turn Ready without probing (kubemark's fake prober).
//
// Isolation: the run re-executes itself in a network namespace of its own (`unshare --net`,
// root needed): hollow kubelets bind 0.0.0.0 on their ports, the stand-in needs the fake
// pod IP, and nothing may clash with the machine's other tests. The namespace vanishes with
// the process. Every process started is stopped by PID (and dies with its parent).
//
// --floor runs the same pods with no operator (floor.ts): Kubernetes' own time for them.
//
// Figures printed: time from creating the MailClusters to all Ready; operator peak RSS
// (VmHWM); the operator's API requests per second during the cold start (audit log) and its
// own metrics; API writes in a quiet minute afterwards; the roll (every cluster's
// spec.image changed at once): most clusters rolling at once and the time to finish.
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, makeInformer, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { ensureControlPlaneBinaries, startControlPlane, type ControlPlane } from '../../../local/src/controlplane/index.ts';
import { ensureBenchTools, type BenchTools } from '../../../local/src/controlplane/bench-tools.ts';
import { get } from '../../../local/src/controlplane/health.ts';
import { startComponent, type Component } from '../../../local/src/controlplane/supervise.ts';
import { LoadBalancerController } from '../../../local/src/loadbalancer/controller.ts';
import { startAdminStandIn } from './admin-standin.ts';
import { hollowNodeCount, parseScaleArgs, USAGE, type ScaleArgs } from './args.ts';
import { auditPolicy, metricDelta, parseAuditLine, peakPerSecond, summarize, sumMetric, type AuditRequest } from './audit.ts';
import { floorObjects, type FloorObject } from './floor.ts';
import { RollTracker, type PodView } from './roll-tracker.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const INNER_ENV = 'MAILCLUSTER_BENCH_SCALE_INNER';
/** What the fake CRI runtime (k8s.io/cri-api testing) reports as every pod's IP. */
const FAKE_POD_IP = '192.168.192.168';
const ADMIN_PORT = 8025;
const OPERATOR_USER = 'mailcluster-operator';
const OPERATOR_METRICS = '127.52.0.3:8080';
const SCHEDULER_ADDRESS = '127.52.0.2';
const LB_RANGE = '127.52.128.0/17';
const STORAGE_CLASS = 'bench-static';
const OLD_IMAGE = 'mailcluster/node:0.1.0';
const NEW_IMAGE = 'mailcluster/node:0.1.1-bench';
const GROUP = 'mailcluster.io';
const VERSION = 'v1alpha1';
const PLURAL = 'mailclusters';

const started = Date.now();
const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s load ${loadavg()[0].toFixed(1)}]`;
const say = (line: string): void => { process.stdout.write(`${stamp()} ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- outer process

async function outer(args: ScaleArgs): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('bench:scale needs root (it runs in a network namespace of its own)');
  say(`machine: ${cpus().length} cores, shared with other work (see the load average on every line)`);
  const t0 = Date.now();
  const cp = await ensureControlPlaneBinaries();
  say(`control plane binaries: ${cp.source} (${cp.dir}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const t1 = Date.now();
  const tools: BenchTools = await ensureBenchTools();
  say(`kubemark + kube-scheduler: ${tools.source} (${tools.dir}) in ${((Date.now() - t1) / 1000).toFixed(1)} s${tools.buildSeconds ? ` (kube-scheduler ${tools.buildSeconds['kube-scheduler']} s, kubemark ${tools.buildSeconds.kubemark} s)` : ''}`);
  // Exec'd by unshare: the child's PID is the bench's own.
  const child = spawn('unshare', ['--net', '--', process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [INNER_ENV]: '1', MAILCLUSTER_CONTROLPLANE_ASSETS: cp.dir, MAILCLUSTER_BENCH_TOOLS: tools.dir },
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { child.kill(sig); });
  // The bound: past --timeout the inner run is told to stop, and killed 60 s later.
  const bound = setTimeout(() => {
    say(`--timeout ${args.timeoutS} s reached: stopping (pid ${child.pid})`);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  }, args.timeoutS * 1000);
  const code = await new Promise<number>((res) => child.on('exit', (c, s) => res(c ?? (s ? 128 : 1))));
  clearTimeout(bound);
  return code;
}

// ---------------------------------------------------------------- inner process (own netns)

interface Running {
  /** Every process started, to stop by PID. */
  components: Component[];
  /** Stop steps, run last-registered first: the operator before what it talks to, the control plane last. */
  stoppers: Array<() => Promise<void>>;
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

function vm(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}
const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MB`;

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function retry<T>(what: string, fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw new Error(`${what}: ${(err as Error).message}`);
      await sleep(500 * i);
    }
  }
}

async function waitFor(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>, everyMs = 250): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
  return Date.now();
}

async function readAudit(file: string): Promise<AuditRequest[]> {
  const out: AuditRequest[] = [];
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    const r = parseAuditLine(line);
    if (r) out.push(r);
  }
  return out;
}

function clusterNames(args: ScaleArgs): Array<{ namespace: string; name: string }> {
  const width = String(Math.max(0, Math.ceil(args.clusters / args.perNamespace) - 1)).length;
  return Array.from({ length: args.clusters }, (_, i) => ({
    namespace: `bench-${String(Math.floor(i / args.perNamespace)).padStart(width, '0')}`,
    name: `mc-${String(i % args.perNamespace).padStart(String(args.perNamespace - 1).length, '0')}`,
  }));
}

function podView(pod: V1Pod, deleted: boolean): PodView | undefined {
  const labels = pod.metadata?.labels ?? {};
  const cluster = labels['mailcluster.io/cluster'];
  if (!cluster) return undefined;
  return {
    namespace: pod.metadata!.namespace!,
    name: pod.metadata!.name!,
    cluster,
    image: pod.spec?.containers?.[0]?.image ?? '',
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    role: labels['mailcluster.io/role'] ?? '',
    deleted,
  };
}

async function inner(args: ScaleArgs): Promise<void> {
  const toolsDir = process.env.MAILCLUSTER_BENCH_TOOLS!;
  const kubemark = join(toolsDir, 'kubemark');
  const kubeScheduler = join(toolsDir, 'kube-scheduler');
  ip(['link', 'set', 'lo', 'up']);
  ip(['addr', 'add', `${FAKE_POD_IP}/32`, 'dev', 'lo']);
  const dir = mkdtempSync(join(tmpdir(), 'mailcluster-bench-scale-'));
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  say(`state in ${dir} (own network namespace; removed at the end${args.keep ? ' unless --keep: kept' : ''})`);
  const run: Running = { components: [], stoppers: [] };
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const s of run.stoppers.reverse()) await s().catch(() => undefined);
    await Promise.all(run.components.map((c) => c.stop(5000))); // any left (none, normally)
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { say(`${sig}: stopping everything`); void stopAll().then(() => process.exit(130)); });

  try {
    await phases(args, dir, logs, kubemark, kubeScheduler, run);
  } finally {
    say('stopping everything (by PID)');
    await stopAll();
    say('stopped');
  }
}

async function phases(args: ScaleArgs, dir: string, logs: string, kubemark: string, kubeScheduler: string, run: Running): Promise<void> {
  const pods = args.clusters * args.replicas;
  const nodes = args.hollowNodes ?? hollowNodeCount(pods, args.maxPods);
  if (nodes * args.maxPods < pods) throw new Error(`${nodes} hollow nodes x --max-pods ${args.maxPods} hold fewer than ${pods} pods`);
  say(`plan: ${args.clusters} MailClusters x ${args.replicas} replicas = ${pods} pods in ${Math.ceil(args.clusters / args.perNamespace)} namespaces, ${nodes} hollow nodes x max ${args.maxPods} pods`);

  // ---- control plane
  const auditFile = join(dir, 'audit.log');
  const policyFile = join(dir, 'audit-policy.yaml');
  writeFileSync(policyFile, auditPolicy(OPERATOR_USER));
  const tCp = Date.now();
  const cp: ControlPlane = await startControlPlane({
    dir: join(dir, 'controlplane'),
    etcdUnsafeNoFsync: true,
    log: (line) => writeFileSync(join(logs, 'controlplane.log'), `${line}\n`, { flag: 'a' }),
    extraApiServerArgs: [`--audit-policy-file=${policyFile}`, `--audit-log-path=${auditFile}`, '--audit-log-format=json', '--audit-log-mode=batch', '--audit-log-batch-max-wait=1s', '--audit-log-maxsize=0'],
    // The PV binder and the other controllers get 20 QPS by default: 3,000 claims would take minutes.
    extraControllerManagerArgs: ['--kube-api-qps=300', '--kube-api-burst=600'],
  });
  run.stoppers.push(() => cp.stop());
  say(`control plane up in ${((Date.now() - tCp) / 1000).toFixed(1)} s: ${cp.server}`);
  const adminKc = new KubeConfig();
  adminKc.loadFromFile(cp.kubeconfigPath);
  const core = adminKc.makeApiClient(CoreV1Api);
  const custom = adminKc.makeApiClient(CustomObjectsApi);
  const apiTls = { ca: readFileSync(cp.pki.caCert), cert: readFileSync(cp.pki.adminCert), key: readFileSync(cp.pki.adminKey) };
  const apiMetrics = async (): Promise<string> => (await get(`${cp.server}/metrics`, apiTls, 30_000)).body;

  await cp.kubectl(['apply', '--server-side', '-f', join(repo, 'crds/mailclusters.mailcluster.io.yaml')]);
  await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailclusters.mailcluster.io']);
  await cp.kubectl(['create', 'clusterrolebinding', 'bench-mailcluster-operator', '--clusterrole=cluster-admin', `--user=${OPERATOR_USER}`]);
  const namespaces = [...new Set(clusterNames(args).map((c) => c.namespace)), 'mailcluster-system'];
  await cp.kubectl(['create', '-f', '-'], { input: namespaces.map((n) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${n}}\n`).join('---\n') });
  await cp.kubectl(['create', '-f', '-'], { input: `apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: ${STORAGE_CLASS}}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: ${args.immediateBinding ? 'Immediate' : 'WaitForFirstConsumer'}\n` });

  // ---- kube-scheduler
  const schedKc = cp.createKubeconfig({ name: 'kube-scheduler', user: 'system:kube-scheduler' });
  const schedConfig = join(dir, 'kube-scheduler.yaml');
  writeFileSync(schedConfig, [
    'apiVersion: kubescheduler.config.k8s.io/v1',
    'kind: KubeSchedulerConfiguration',
    `clientConnection: {kubeconfig: ${JSON.stringify(schedKc)}, qps: 300, burst: 600}`,
    'leaderElection: {leaderElect: false}',
    '',
  ].join('\n'));
  const scheduler = startComponent({
    name: 'kube-scheduler', command: kubeScheduler, logFile: join(logs, 'kube-scheduler.log'),
    args: [`--config=${schedConfig}`, `--bind-address=${SCHEDULER_ADDRESS}`, '--secure-port=10259', `--authentication-kubeconfig=${schedKc}`, `--authorization-kubeconfig=${schedKc}`, `--v=${args.schedulerV}`],
  });
  run.components.push(scheduler);
  run.stoppers.push(() => scheduler.stop(5000));

  // ---- hollow nodes
  const hollow: Component[] = [];
  // Their fake runtime's socket is /tmp/kubelet_remote_<random>.sock whatever TMPDIR says:
  // the ones that appear while they run are theirs, removed once they are stopped.
  const socketsBefore = new Set(readdirSync('/tmp').filter((f) => /^kubelet_remote_\d+\.sock$/.test(f)));
  run.stoppers.push(async () => {
    await Promise.all(hollow.map((c) => c.stop(5000)));
    for (const f of readdirSync('/tmp')) if (/^kubelet_remote_\d+\.sock$/.test(f) && !socketsBefore.has(f)) rmSync(join('/tmp', f), { force: true });
  });
  const tNodes = Date.now();
  for (let i = 0; i < nodes; i++) {
    const name = `hollow-node-${i}`;
    const kc = cp.createKubeconfig({ name, user: `system:node:${name}`, groups: ['system:nodes'] });
    const nodeDir = join(dir, 'nodes', name);
    mkdirSync(nodeDir, { recursive: true });
    const c = startComponent({
      name, command: kubemark, logFile: join(logs, `${name}.log`), cwd: nodeDir,
      // TMPDIR: the hollow kubelet makes its root dir there (utils.MakeTempDirOrDie).
      env: { ...process.env, TMPDIR: nodeDir },
      args: [
        '--morph=kubelet', `--name=${name}`, `--kubeconfig=${kc}`, `--kubelet-port=${11250 + i}`, '--kubelet-read-only-port=0',
        `--max-pods=${args.maxPods}`, '--use-host-image-service=false', '--kube-api-qps=50', '--kube-api-burst=100', '--v=0',
      ],
    });
    hollow.push(c);
    run.components.push(c);
  }
  await waitFor(`${nodes} Ready nodes`, 300_000, async () => {
    for (const c of hollow) if (!c.running()) throw new Error(`${c.name} exited; see ${c.logFile}`);
    const list = await core.listNode();
    return list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length >= nodes;
  }, 1000);
  say(`${nodes} hollow nodes Ready in ${((Date.now() - tNodes) / 1000).toFixed(1)} s`);

  // ---- load balancers, admin stand-in, volumes
  const lbLog = pino({ level: 'warn' }, pino.destination({ dest: join(logs, 'loadbalancer.log'), sync: false }));
  const lb = new LoadBalancerController({ kubeConfig: adminKc, range: LB_RANGE, log: lbLog });
  await lb.start();
  run.stoppers.push(() => lb.stop());
  const standIn = await startAdminStandIn(FAKE_POD_IP, ADMIN_PORT);
  run.stoppers.push(() => standIn.close());
  const clusters = clusterNames(args);
  const tPv = Date.now();
  const claims = clusters.flatMap((c) => Array.from({ length: args.replicas }, (_, i) => ({ namespace: c.namespace, claim: `${c.name}-${i}-spool` })));
  await pool(claims, 20, (k) => retry(`PV for ${k.namespace}/${k.claim}`, () => core.createPersistentVolume({
    body: {
      metadata: { name: `${k.namespace}-${k.claim}` },
      spec: {
        capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: STORAGE_CLASS, persistentVolumeReclaimPolicy: 'Retain',
        hostPath: { path: `/nonexistent/bench-scale/${k.namespace}/${k.claim}` },
        // Pre-bound to the claim the operator will create.
        claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: k.namespace, name: k.claim },
      },
    },
  })));
  say(`${claims.length} PersistentVolumes pre-created (pre-bound to the spool claims) in ${((Date.now() - tPv) / 1000).toFixed(1)} s`);

  // ---- the operator (not with --floor)
  const nodeBin = process.execPath;
  const hasPace = !args.floor && /--max-concurrent-rollouts/.test(spawnSync(nodeBin, [join(repo, 'bin/mailcluster.js'), 'operator', '--help'], { encoding: 'utf8' }).stdout);
  if (!args.floor) say(hasPace ? `the operator has --max-concurrent-rollouts: using ${args.maxConcurrentRollouts}` : 'the operator has no --max-concurrent-rollouts flag (missing): the roll runs at its unpaced default');
  const opKc = cp.createKubeconfig({ name: OPERATOR_USER, user: OPERATOR_USER });
  // Restarted when it exits, as its Deployment's kubelet would (CrashLoopBackOff starts at
  // 10 s): under load the operator may lose its Lease and exit by design.
  const operatorArgs = [
    ...(args.operatorCpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'prof')}`] : []),
    ...(args.operatorHeapSnapshot ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${join(dir, 'prof')}`] : []),
    ...args.operatorNodeArgs,
    join(repo, 'bin/mailcluster.js'), 'operator', '--kubeconfig', opKc, '--metrics-address', OPERATOR_METRICS,
    '--operator-namespace', 'mailcluster-system', '--master-key-file', join(dir, 'master.key'),
    '--leader-elect', '--leader-election-namespace', 'mailcluster-system',
    ...(hasPace ? ['--max-concurrent-rollouts', String(args.maxConcurrentRollouts)] : []),
    ...args.operatorArgs,
  ];
  if (args.operatorArgs.length > 0 || args.operatorNodeArgs.length > 0 || args.operatorCpuProf) say(`operator run as: node ${operatorArgs.map((a) => a.replace(dir, '<state>').replace(repo, '.')).join(' ')}`);
  if (Object.keys(args.operatorEnv).length > 0) say(`operator environment adds: ${Object.entries(args.operatorEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  // proc stays undefined with --floor: no operator runs
  const op = { proc: undefined as unknown as Component, restarts: 0, peak: 0, stopping: false };
  const startOperator = (): void => {
    const proc = startComponent({ name: 'operator', command: nodeBin, logFile: join(logs, 'operator.log'), cwd: repo, args: operatorArgs, env: { ...process.env, ...args.operatorEnv } });
    op.proc = proc;
    run.components.push(proc);
    void proc.exited.then(async (exit) => {
      if (op.stopping) return;
      op.restarts++;
      say(`OPERATOR EXITED (${exit.signal ?? `code ${exit.code}`}; see ${proc.logFile}): restart ${op.restarts} in 10 s, as its Deployment would`);
      await sleep(10_000);
      if (!op.stopping) startOperator();
    });
  };
  const opHwm = (): number => Math.max(op.peak, vm(op.proc.pid, 'VmHWM') || 0);
  const opMetrics = async (): Promise<string> => { try { return (await get(`http://${OPERATOR_METRICS}/metrics`, {}, 10_000)).body; } catch { return ''; } };
  if (!args.floor) {
    startOperator();
    // VmHWM is per process: sampled every second, so the peak survives a restart.
    const sampler = setInterval(() => { op.peak = Math.max(op.peak, vm(op.proc.pid, 'VmHWM') || 0); }, 1000);
    run.stoppers.push(async () => { op.stopping = true; clearInterval(sampler); await op.proc.stop(10_000); });
    await waitFor('the operator to lead', 120_000, async () => {
      if (op.restarts > 0) throw new Error(`the operator exited at its start; see ${op.proc.logFile}`);
      try { return (await get(`http://${OPERATOR_METRICS}/readyz`)).status === 200; } catch { return false; }
    }, 500);
    say(`operator running (pid ${op.proc.pid}), leading; RSS ${mb(vm(op.proc.pid, 'VmRSS'))}`);
  } else {
    say('--floor: no operator; the bench creates what each pod needs, then the pods (floor.ts)');
  }

  // ---- watches of the bench itself (its own user: not in the operator's figures)
  const ready = new Set<string>();
  const mcInformer = makeInformer<any>(adminKc, `/apis/${GROUP}/${VERSION}/${PLURAL}`, () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as any);
  const onMc = (o: any): void => {
    const key = `${o.metadata.namespace}/${o.metadata.name}`;
    if (o.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True')) ready.add(key);
    else ready.delete(key);
  };
  mcInformer.on('add', onMc);
  mcInformer.on('update', onMc);
  mcInformer.on('error', () => setTimeout(() => { if (!stoppingInformers) void mcInformer.start(); }, 1000));
  const podsReady = new Set<string>();
  const podsThere = new Set<string>(); // created by the operator, not yet deleted
  let tracker: RollTracker | undefined;
  const podInformer = makeInformer<V1Pod>(adminKc, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=mailcluster-operator' }) as any, 'app.kubernetes.io/managed-by=mailcluster-operator');
  const onPod = (deleted: boolean) => (pod: V1Pod): void => {
    const v = podView(pod, deleted);
    if (!v) return;
    const key = `${v.namespace}/${v.name}`;
    if (v.ready && !deleted) podsReady.add(key); else podsReady.delete(key);
    if (deleted) podsThere.delete(key); else podsThere.add(key);
    tracker?.observe(v, Date.now());
  };
  podInformer.on('add', onPod(false));
  podInformer.on('update', onPod(false));
  podInformer.on('delete', onPod(true));
  podInformer.on('error', () => setTimeout(() => { if (!stoppingInformers) void podInformer.start(); }, 1000));
  let stoppingInformers = false;
  await mcInformer.start();
  await podInformer.start();
  run.stoppers.push(async () => { stoppingInformers = true; await mcInformer.stop(); await podInformer.stop(); });

  // CPU seconds per part, to see who was busy in a window (the machine is shared).
  const cpuParts = (): Record<string, number> => {
    const p = cp.pids();
    return {
      operator: op.proc ? cpuSeconds(op.proc.pid) : 0, 'kube-apiserver': cpuSeconds(p.kubeApiserver), etcd: cpuSeconds(p.etcd),
      'kube-controller-manager': cpuSeconds(p.kubeControllerManager), 'kube-scheduler': cpuSeconds(scheduler.pid),
      'hollow nodes': hollow.reduce((a, c) => a + cpuSeconds(c.pid), 0), bench: cpuSeconds(process.pid),
    };
  };
  const cpuReport = (what: string, before: Record<string, number>, seconds: number): void => {
    const after = cpuParts();
    say(`RESULT CPU seconds during ${what} (${seconds.toFixed(0)} s wall, 2 cores shared): ${Object.keys(after).map((k) => `${k} ${(after[k] - before[k]).toFixed(0)}`).join(', ')}`);
  };

  // ---- cold start
  const cpuCold = cpuParts();
  const apiBefore = await apiMetrics();
  const opBefore = await opMetrics();
  const restartsCold = op.restarts;
  const specOf = (c: { namespace: string; name: string }) => ({
    replicas: args.replicas, hostname: `${c.name}.${c.namespace}.bench.example`, relayDomains: [`${c.name}.example`], image: OLD_IMAGE, storage: { size: '1Gi', storageClassName: STORAGE_CLASS },
  });
  const tCreate = Date.now();
  let firstAllReady = 0;
  if (!args.floor) {
    say(`creating ${args.clusters} MailClusters (20 requests at a time)`);
    await pool(clusters, 20, (c) => retry(`create ${c.namespace}/${c.name}`, () => custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, plural: PLURAL, namespace: c.namespace,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'MailCluster', metadata: { name: c.name, namespace: c.namespace }, spec: specOf(c) },
    })));
  } else {
    // As fast as a client can: 20 clusters at a time, each one's needs at once, then its pods at once.
    say(`--floor: creating what ${pods} pods need, then the pods (20 clusters at a time)`);
    const objects = KubernetesObjectApi.makeApiClient(adminKc);
    const create = (o: FloorObject) => retry(`create ${o.kind} ${o.metadata.namespace}/${o.metadata.name}`, () => objects.create(o as any));
    await pool(clusters, 20, async (c) => {
      const { needs, pods: clusterPods } = floorObjects(c.namespace, c.name, specOf(c));
      await Promise.all(needs.map(create));
      await Promise.all(clusterPods.map(create));
    });
  }
  const tCreated = Date.now();
  say(`created in ${((tCreated - tCreate) / 1000).toFixed(1)} s; waiting for all Ready (bound ${args.readyTimeoutS} s)`);
  let lastReport = 0;
  let opMemoryAtPeak = { rss: 0, memory: '' };
  let tReady: number;
  let allReady = true;
  try {
    // Each progress line also says who used the CPU since the last one (share of one core) and
    // the operator's work-queue depth: what paces the cold start shows there.
    let cpuLast = cpuParts();
    let tLast = Date.now();
    tReady = await waitFor('all MailClusters Ready', args.readyTimeoutS * 1000, async () => {
      if (!firstAllReady && podsReady.size >= pods) firstAllReady = Date.now();
      if (Date.now() - lastReport >= 10_000) {
        lastReport = Date.now();
        const cpuNow = cpuParts();
        const dt = (lastReport - tLast) / 1000;
        const busy = dt < 1 ? '-' : Object.keys(cpuNow).map((k) => `${k.replace('kube-', '').replace('hollow nodes', 'hollow')} ${Math.round((100 * (cpuNow[k] - cpuLast[k])) / dt)}%`).join(' ');
        cpuLast = cpuNow;
        tLast = lastReport;
        const opNow = await opMetrics();
        const depth = sumMetric(opNow, 'mailcluster_operator_workqueue_depth').get('');
        const rssNow = op.proc ? vm(op.proc.pid, 'VmRSS') : 0;
        const memory = operatorMemory(opNow);
        if (rssNow > opMemoryAtPeak.rss) opMemoryAtPeak = { rss: rssNow, memory };
        say(`  ${ready.size}/${args.clusters} MailClusters Ready, ${podsThere.size}/${pods} pods created, ${podsReady.size} Ready, operator RSS ${mb(rssNow)} (${memory})${op.restarts ? ` (restarted ${op.restarts}x)` : ''}; queue ${depth ?? '-'}; CPU ${busy}`);
      }
      return args.floor ? podsReady.size >= pods : ready.size >= args.clusters;
    }, 200);
  } catch {
    // Past the bound: print what there is, then stop (no quiet window or roll on a cluster still starting).
    say(`NOT all Ready: ${ready.size}/${args.clusters} MailClusters, ${podsReady.size}/${pods} pods after ${args.readyTimeoutS} s`);
    tReady = Date.now();
    allReady = false;
  }
  const apiAfter = await apiMetrics();
  const opAfter = await opMetrics();
  const coldS = (tReady - tCreate) / 1000;
  if (args.floor) {
    if (allReady) say(`RESULT floor (Kubernetes alone, no operator): all ${pods} pods Ready ${coldS.toFixed(1)} s after the first create (created in ${((tCreated - tCreate) / 1000).toFixed(1)} s)`);
    const apiFloor = metricDelta(sumMetric(apiBefore, 'apiserver_request_total', ['verb']), sumMetric(apiAfter, 'apiserver_request_total', ['verb']));
    const n = [...apiFloor.values()].reduce((a, b) => a + b, 0);
    say(`RESULT kube-apiserver (all clients, apiserver_request_total): ${n} requests in ${coldS.toFixed(1)} s = ${(n / coldS).toFixed(0)}/s; by verb ${[...apiFloor.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    cpuReport('the floor cold start', cpuCold, coldS);
    return;
  }
  if (allReady) say(`RESULT cold start: all ${args.clusters} MailClusters Ready ${coldS.toFixed(1)} s after the first create (goal < 120 s); all ${pods} pods Ready at ${firstAllReady ? ((firstAllReady - tCreate) / 1000).toFixed(1) : '?'} s`);
  say(`RESULT operator VmHWM after the cold start: ${mb(opHwm())} (goal < 300 MB); VmRSS now ${mb(vm(op.proc.pid, 'VmRSS'))}; operator restarts ${op.restarts}`);
  say(`  operator memory at the highest RSS sampled (every 10 s): RSS ${mb(opMemoryAtPeak.rss)} (${opMemoryAtPeak.memory}); now: ${operatorMemory(opAfter)}`);
  const hollowRss = hollow.map((c) => vm(c.pid, 'VmRSS'));
  say(`RESULT hollow nodes: VmRSS mean ${mb(hollowRss.reduce((a, b) => a + b, 0) / hollowRss.length)}, max ${mb(Math.max(...hollowRss))}, sum ${mb(hollowRss.reduce((a, b) => a + b, 0))} for ${nodes} nodes (~${Math.round(pods / nodes)} pods each)`);
  const cpPids = cp.pids();
  say(`RESULT other VmHWM: kube-apiserver ${mb(vm(cpPids.kubeApiserver, 'VmHWM'))}, etcd ${mb(vm(cpPids.etcd, 'VmHWM'))}, kube-controller-manager ${mb(vm(cpPids.kubeControllerManager, 'VmHWM'))}, kube-scheduler ${mb(vm(scheduler.pid, 'VmHWM'))}, this bench ${mb(vm(process.pid, 'VmHWM'))}`);

  const apiAll = metricDelta(sumMetric(apiBefore, 'apiserver_request_total', ['verb']), sumMetric(apiAfter, 'apiserver_request_total', ['verb']));
  const apiTotal = [...apiAll.values()].reduce((a, b) => a + b, 0);
  say(`RESULT kube-apiserver (all clients, apiserver_request_total): ${apiTotal} requests in ${coldS.toFixed(1)} s = ${(apiTotal / coldS).toFixed(0)}/s; by verb ${[...apiAll.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  // API Priority and Fairness: time requests waited in its queues, by priority level (the
  // operator's user falls in global-default, kubelets in system, the scheduler and the
  // controller-manager in workload-high), and requests it refused.
  const apfWaitSum = metricDelta(sumMetric(apiBefore, 'apiserver_flowcontrol_request_wait_duration_seconds_sum', ['priority_level']), sumMetric(apiAfter, 'apiserver_flowcontrol_request_wait_duration_seconds_sum', ['priority_level']));
  const apfWaitCount = metricDelta(sumMetric(apiBefore, 'apiserver_flowcontrol_request_wait_duration_seconds_count', ['priority_level']), sumMetric(apiAfter, 'apiserver_flowcontrol_request_wait_duration_seconds_count', ['priority_level']));
  const apfRejected = metricDelta(sumMetric(apiBefore, 'apiserver_flowcontrol_rejected_requests_total', ['priority_level']), sumMetric(apiAfter, 'apiserver_flowcontrol_rejected_requests_total', ['priority_level']));
  const durSum = metricDelta(sumMetric(apiBefore, 'apiserver_request_duration_seconds_sum', ['verb']), sumMetric(apiAfter, 'apiserver_request_duration_seconds_sum', ['verb']));
  const durCount = metricDelta(sumMetric(apiBefore, 'apiserver_request_duration_seconds_count', ['verb']), sumMetric(apiAfter, 'apiserver_request_duration_seconds_count', ['verb']));
  say(`  mean request duration by verb (all clients, watches excluded): ${[...durCount.entries()].filter(([k, n]) => n > 0 && k !== 'WATCH').map(([k, n]) => `${k} ${((1000 * (durSum.get(k) ?? 0)) / n).toFixed(0)} ms`).join(', ')}`);
  say(`  APF wait by priority level (mean over requests): ${[...apfWaitCount.entries()].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${((1000 * (apfWaitSum.get(k) ?? 0)) / n).toFixed(1)} ms x ${n}`).join(', ')}; rejected ${[...apfRejected.entries()].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  printOperatorMetrics('cold start', opBefore, opAfter, coldS, op.restarts !== restartsCold);
  cpuReport('the cold start', cpuCold, coldS);
  if (args.operatorHeapSnapshot) {
    mkdirSync(join(dir, 'prof'), { recursive: true });
    process.kill(op.proc.pid, 'SIGUSR2');
    await waitFor('the heap snapshot', 120_000, () => readdirSync(join(dir, 'prof')).some((f) => f.endsWith('.heapsnapshot')), 1000).catch(() => undefined);
    await sleep(10_000);
    say(`heap snapshot of the operator in ${join(dir, 'prof')} (written after the VmHWM above was read)`);
  }

  if (!allReady) {
    await sleep(2500);
    const partial = summarize(await readAudit(auditFile), tCreate, tReady);
    say(`RESULT operator API requests in the ${partial.seconds.toFixed(0)} s bound (audit log): ${partial.total} = ${partial.perSecond.toFixed(1)}/s, writes ${partial.writes}; top: ${partial.byVerbResource.slice(0, 12).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    return;
  }
  // ---- quiet minute
  const settleMs = 10_000;
  say(`quiet window: ${settleMs / 1000} s to settle, then ${args.quietS} s with nothing changed`);
  await sleep(settleMs);
  const opQuietBefore = await opMetrics();
  const restartsQuiet = op.restarts;
  const cpuQuiet = cpuParts();
  const tQuiet = Date.now();
  await sleep(args.quietS * 1000);
  const tQuietEnd = Date.now();
  const opQuietAfter = await opMetrics();
  await sleep(2500); // the audit log is written in batches (max wait 1 s)
  let audit = await readAudit(auditFile);
  const opUserAgents = new Set(audit.map((r) => r.userAgent));
  const cold = summarize(audit, tCreate, tReady);
  say(`RESULT operator API requests during the cold start (audit log, user ${OPERATOR_USER}): ${cold.total} in ${cold.seconds.toFixed(1)} s = ${cold.perSecond.toFixed(1)}/s (peak ${peakPerSecond(audit, tCreate, tReady)}/s), writes ${cold.writes} = ${cold.writesPerSecond.toFixed(1)}/s; codes ${JSON.stringify(cold.byCode)}`);
  say(`  per cluster: ${(cold.total / args.clusters).toFixed(1)} requests, ${(cold.writes / args.clusters).toFixed(1)} writes; top: ${cold.byVerbResource.slice(0, 12).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  say(`  user agent(s): ${[...opUserAgents].join(' | ')}`);
  const settle = summarize(audit, tReady, tQuiet);
  const quiet = summarize(audit, tQuiet, tQuietEnd);
  const quietWrites = quiet.byVerbResource.filter(([k]) => /^(create|update|patch|delete)/.test(k));
  say(`RESULT API writes by the operator in the quiet ${args.quietS} s: ${quiet.writes} (goal 0) ${quietWrites.map(([k, v]) => `${k} ${v}`).join(', ')}; leases excluded: ${quietWrites.filter(([k]) => !k.includes('leases')).reduce((a, [, v]) => a + v, 0)}; reads ${quiet.total - quiet.writes}`);
  say(`  (in the ${settleMs / 1000} s settle before it: ${settle.writes} writes ${settle.byVerbResource.filter(([k]) => /^(create|update|patch|delete)/.test(k)).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  printOperatorMetrics('quiet window', opQuietBefore, opQuietAfter, args.quietS, op.restarts !== restartsQuiet);
  cpuReport('the quiet window', cpuQuiet, args.quietS);
  say(`RESULT operator VmHWM after the quiet window: ${mb(opHwm())}; restarts ${op.restarts}`);

  if (args.skipRoll) return;
  // ---- the roll: a pod-template change on every cluster at once
  tracker = new RollTracker(NEW_IMAGE, args.replicas);
  for (const pod of podInformer.list()) { const v = podView(pod, false); if (v) tracker.seed(v); }
  const standInBefore = new Map(standIn.counts);
  const opRollBefore = await opMetrics();
  const restartsRoll = op.restarts;
  const cpuRoll = cpuParts();
  say(`roll: spec.image ${OLD_IMAGE} -> ${NEW_IMAGE} on all ${args.clusters} MailClusters (merge patches, 20 at a time)`);
  const tRoll = Date.now();
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  await pool(clusters, 20, (c) => retry(`patch ${c.namespace}/${c.name}`, () => custom.patchNamespacedCustomObject({
    group: GROUP, version: VERSION, plural: PLURAL, namespace: c.namespace, name: c.name, body: { spec: { image: NEW_IMAGE } },
  }, mergePatch)));
  say(`patched in ${((Date.now() - tRoll) / 1000).toFixed(1)} s; waiting for every cluster to roll (bound ${args.rollTimeoutS} s)`);
  lastReport = 0;
  let tRolled: number | undefined;
  try {
    tRolled = await waitFor('every cluster rolled', args.rollTimeoutS * 1000, () => {
      if (Date.now() - lastReport >= 10_000) {
        lastReport = Date.now();
        say(`  rolled ${tracker!.done}/${args.clusters}, rolling now ${tracker!.active}, most at once so far ${tracker!.maxActive}`);
      }
      return tracker!.done >= args.clusters;
    }, 200);
  } catch {
    say(`NOT all rolled after ${args.rollTimeoutS} s`);
  }
  const opRollAfter = await opMetrics();
  const durations = tracker.durations();
  const rollS = ((tRolled ?? Date.now()) - tRoll) / 1000;
  say(`RESULT roll: ${tracker.done}/${args.clusters} clusters rolled in ${rollS.toFixed(1)} s; most rolling at once ${tracker.maxActive} (at ${((tracker.maxActiveAt - tRoll) / 1000).toFixed(1)} s)${hasPace ? ` with --max-concurrent-rollouts ${args.maxConcurrentRollouts}` : ' (operator without --max-concurrent-rollouts)'}`);
  if (durations.length) say(`  one cluster's roll (${args.replicas} pods, one at a time): median ${(durations[Math.floor(durations.length / 2)] / 1000).toFixed(1)} s, max ${(durations[durations.length - 1] / 1000).toFixed(1)} s`);
  say(`  admin stand-in answered: ${[...standIn.counts.entries()].map(([k, v]) => `${k} ${v - (standInBefore.get(k) ?? 0)}`).join(', ') || 'nothing'}`);
  await sleep(2500);
  audit = await readAudit(auditFile);
  const roll = summarize(audit, tRoll, tRolled ?? Date.now());
  say(`RESULT operator API requests during the roll (audit log): ${roll.total} = ${roll.perSecond.toFixed(1)}/s, writes ${roll.writes} = ${roll.writesPerSecond.toFixed(1)}/s; top: ${roll.byVerbResource.slice(0, 10).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  printOperatorMetrics('roll', opRollBefore, opRollAfter, rollS, op.restarts !== restartsRoll);
  cpuReport('the roll', cpuRoll, rollS);
  say(`RESULT operator VmHWM at the end: ${mb(opHwm())} (goal < 300 MB); restarts ${op.restarts}`);
}

/**
 * Where the operator's memory is, from its default process metrics (prom-client,
 * prefix mailcluster_operator_process_): V8 heap committed and used, each space's committed
 * size, and external memory (Buffers, ArrayBuffers: outside the V8 heap).
 */
function operatorMemory(metrics: string): string {
  const p = 'mailcluster_operator_process_';
  const one = (name: string): number => sumMetric(metrics, `${p}${name}`).get('') ?? NaN;
  const spaces = sumMetric(metrics, `${p}nodejs_heap_space_size_total_bytes`, ['space']);
  if (!metrics) return 'no metrics';
  return `heap ${mb(one('nodejs_heap_size_total_bytes'))} committed, ${mb(one('nodejs_heap_size_used_bytes'))} used [${[...spaces.entries()].filter(([, v]) => v >= 1048576).map(([k, v]) => `${k.replace('_space', '')} ${mb(v)}`).join(', ')}], external ${mb(one('nodejs_external_memory_bytes'))}`;
}

/** What the operator's own /metrics say about a window: writes, API requests (when it has them), reconciles. */
function printOperatorMetrics(what: string, before: string, after: string, seconds: number, restarted = false): void {
  // A restarted operator's counters start again at 0: then only the last instance's are shown.
  if (restarted) { say(`  (the operator restarted during ${what}: its counters cover its last start only)`); before = ''; }
  const writes = metricDelta(sumMetric(before, 'mailcluster_operator_writes_total', ['verb', 'kind']), sumMetric(after, 'mailcluster_operator_writes_total', ['verb', 'kind']));
  const total = [...writes.values()].reduce((a, b) => a + b, 0);
  say(`RESULT operator metrics, ${what}: mailcluster_operator_writes_total +${total} (${(total / seconds).toFixed(1)}/s) ${[...writes.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const apiName = /^(mailcluster_operator_api_requests_total)[{ ]/m.exec(after)?.[1];
  if (apiName) {
    const reqs = metricDelta(sumMetric(before, apiName, ['verb']), sumMetric(after, apiName, ['verb']));
    const n = [...reqs.values()].reduce((a, b) => a + b, 0);
    say(`  ${apiName} +${n} (${(n / seconds).toFixed(1)}/s) ${[...reqs.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } else {
    say('  mailcluster_operator_api_requests_total: not exported by this operator');
  }
  const deferred = metricDelta(sumMetric(before, 'mailcluster_operator_deferred_writes_total', ['kind']), sumMetric(after, 'mailcluster_operator_deferred_writes_total', ['kind']));
  if (/^mailcluster_operator_deferred_writes_total/m.test(after)) say(`  deferred writes (own write not in the cache yet): ${[...deferred.entries()].map(([k, v]) => `${k} ${v}`).join(', ') || '0'}`);
  const rec = metricDelta(sumMetric(before, 'mailcluster_operator_reconciles_total', ['result']), sumMetric(after, 'mailcluster_operator_reconciles_total', ['result']));
  const dSum = (sumMetric(after, 'mailcluster_operator_reconcile_duration_seconds_sum').get('') ?? 0) - (sumMetric(before, 'mailcluster_operator_reconcile_duration_seconds_sum').get('') ?? 0);
  const dCount = (sumMetric(after, 'mailcluster_operator_reconcile_duration_seconds_count').get('') ?? 0) - (sumMetric(before, 'mailcluster_operator_reconcile_duration_seconds_count').get('') ?? 0);
  // Garbage collection, from the default process metrics: what a smaller heap costs in CPU.
  const gcName = 'mailcluster_operator_process_nodejs_gc_duration_seconds';
  const gcSum = metricDelta(sumMetric(before, `${gcName}_sum`, ['kind']), sumMetric(after, `${gcName}_sum`, ['kind']));
  const gcCount = metricDelta(sumMetric(before, `${gcName}_count`, ['kind']), sumMetric(after, `${gcName}_count`, ['kind']));
  if (gcCount.size > 0) say(`  garbage collection: ${[...gcCount.entries()].map(([k, n]) => `${k} ${n}x ${(gcSum.get(k) ?? 0).toFixed(2)} s`).join(', ')}`);
  say(`  reconciles ${[...rec.entries()].map(([k, v]) => `${k} ${v}`).join(', ') || '0'}; mean reconcile ${dCount ? ((dSum / dCount) * 1000).toFixed(0) : '-'} ms; queue depth now ${sumMetric(after, 'mailcluster_operator_workqueue_depth').get('') ?? '-'}`);
}

// ---------------------------------------------------------------- entry

async function main(): Promise<void> {
  let args: ScaleArgs;
  try {
    args = parseScaleArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  if (args.help) { console.log(USAGE); return; }
  if (process.env[INNER_ENV]) {
    await inner(args);
    process.exit(0);
  }
  process.exit(await outer(args));
}

main().catch((err) => {
  console.error(`bench:scale failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
