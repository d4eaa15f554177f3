// `npm run bench:scale` flags, parsed without I/O.
export interface ScaleArgs {
  clusters: number;
  replicas: number;
  /** MailClusters per namespace. */
  perNamespace: number;
  /** Hollow nodes; default enough for every pod plus 10 % (at least 3, for the anti-affinity). */
  hollowNodes?: number;
  maxPods: number;
  /** The whole run's bound, in seconds. */
  timeoutS: number;
  /** Cold start: give up waiting for all Ready after this many seconds. */
  readyTimeoutS: number;
  quietS: number;
  rollTimeoutS: number;
  /** Passed to the operator as --max-concurrent-rollouts when it accepts the flag. */
  maxConcurrentRollouts: number;
  skipRoll: boolean;
  /** Keep the bench's state directory (logs, audit log) after the run. */
  keep: boolean;
  /** Extra flags for the operator (--operator-arg, repeatable), e.g. --workers 16. */
  operatorArgs: string[];
  /** Node/V8 flags for the operator, before its script (--operator-node-arg, repeatable), e.g. --max-old-space-size=192. */
  operatorNodeArgs: string[];
  /** Environment for the operator only (--operator-env K=V, repeatable), e.g. MALLOC_ARENA_MAX=1. */
  operatorEnv: Record<string, string>;
  /** Profile the operator's CPU (node --cpu-prof) into the state directory's prof/ (kept). */
  operatorCpuProf: boolean;
  /** Write a heap snapshot of the operator into <state>/prof once the cold start is over. */
  operatorHeapSnapshot: boolean;
  /** The spool StorageClass binds claims at once (Immediate) instead of for the first pod (WaitForFirstConsumer). */
  immediateBinding: boolean;
  /** No operator: the bench creates the pods and what they need itself (floor.ts). */
  floor: boolean;
  /** kube-scheduler's --v (2 logs why each pod did not fit). */
  schedulerV: number;
  help: boolean;
}

export const USAGE = `usage: npm run bench:scale -- [flags]
  --clusters N                 MailClusters to create (default 1000)
  --replicas N                 replicas each (default 3)
  --per-namespace N            MailClusters per namespace (default 100)
  --hollow-nodes N             kubemark hollow nodes (default ceil(1.1 x pods / max-pods), at least 3)
  --max-pods N                 --max-pods of each hollow node (default 300)
  --max-concurrent-rollouts N  the operator's roll pace, when it has the flag (default 50)
  --ready-timeout S            cold start bound (default 600)
  --quiet S                    the quiet window after the cold start (default 60)
  --roll-timeout S             roll bound (default 900)
  --timeout S                  the whole run's bound; everything is stopped past it (default 2400)
  --no-roll                    skip the roll
  --keep                       keep the state directory (logs, audit log)
  --operator-arg ARG           pass ARG to the operator (repeatable: --operator-arg --workers --operator-arg 16)
  --operator-node-arg ARG      a node/V8 flag for the operator, before its script (repeatable: --operator-node-arg --max-old-space-size=192)
  --operator-env K=V           an environment variable for the operator only (repeatable: --operator-env MALLOC_ARENA_MAX=1)
  --operator-cpu-prof          node --cpu-prof the operator into <state>/prof (implies --keep)
  --operator-heap-snapshot     a heap snapshot of the operator into <state>/prof after the cold start (implies --keep)
  --immediate-binding          the spool StorageClass binds claims at once (volumeBindingMode Immediate; default WaitForFirstConsumer)
  --scheduler-v N              kube-scheduler's log verbosity (default 1; 2 says why a pod did not fit)
  --floor                      no operator: the bench creates the same pods and what they need itself, and
                               prints Kubernetes' own time to all pods Ready (the floor under any operator)`;

export function parseScaleArgs(argv: string[]): ScaleArgs {
  const out: ScaleArgs = {
    clusters: 1000, replicas: 3, perNamespace: 100, maxPods: 300, timeoutS: 2400, readyTimeoutS: 600, quietS: 60, rollTimeoutS: 900,
    maxConcurrentRollouts: 50, skipRoll: false, keep: false, help: false, operatorArgs: [], operatorNodeArgs: [], operatorEnv: {}, operatorCpuProf: false, operatorHeapSnapshot: false, immediateBinding: false, schedulerV: 1, floor: false,
  };
  const ints: Record<string, keyof ScaleArgs> = {
    '--clusters': 'clusters', '--replicas': 'replicas', '--per-namespace': 'perNamespace', '--hollow-nodes': 'hollowNodes', '--max-pods': 'maxPods',
    '--timeout': 'timeoutS', '--ready-timeout': 'readyTimeoutS', '--quiet': 'quietS', '--roll-timeout': 'rollTimeoutS', '--max-concurrent-rollouts': 'maxConcurrentRollouts', '--scheduler-v': 'schedulerV',
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) { value = flag.slice(eq + 1); flag = flag.slice(0, eq); }
    if (flag === '--no-roll') { out.skipRoll = true; continue; }
    if (flag === '--keep') { out.keep = true; continue; }
    if (flag === '--operator-cpu-prof') { out.operatorCpuProf = true; out.keep = true; continue; }
    if (flag === '--immediate-binding') { out.immediateBinding = true; continue; }
    if (flag === '--floor') { out.floor = true; out.skipRoll = true; continue; }
    if (flag === '--operator-heap-snapshot') { out.operatorHeapSnapshot = true; out.keep = true; continue; }
    if (flag === '--operator-arg') {
      const v = value ?? argv[++i];
      if (v === undefined) throw new Error('--operator-arg needs a value');
      out.operatorArgs.push(v);
      continue;
    }
    if (flag === '--operator-node-arg') {
      const v = value ?? argv[++i];
      if (v === undefined || !v.startsWith('--')) throw new Error(`--operator-node-arg needs a node flag (--...), got ${JSON.stringify(v)}`);
      out.operatorNodeArgs.push(v);
      continue;
    }
    if (flag === '--operator-env') {
      const v = value ?? argv[++i];
      const m = v === undefined ? null : /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(v);
      if (!m) throw new Error(`--operator-env needs NAME=VALUE, got ${JSON.stringify(v)}`);
      out.operatorEnv[m[1]] = m[2];
      continue;
    }
    if (flag === '-h' || flag === '--help') { out.help = true; continue; }
    const key = ints[flag];
    if (!key) throw new Error(`unknown flag ${JSON.stringify(flag)}\n${USAGE}`);
    const v = value ?? argv[++i];
    if (v === undefined || !/^[0-9]+$/.test(v) || Number(v) < 1) throw new Error(`${flag} needs a positive integer, got ${JSON.stringify(v)}`);
    (out as unknown as Record<string, number>)[key] = Number(v);
  }
  if (out.replicas > out.maxPods) throw new Error('--replicas exceeds --max-pods');
  return out;
}

/** Hollow nodes for `pods` pods: room for all plus 10 % (a roll replaces pods), at least 3. */
export function hollowNodeCount(pods: number, maxPods: number): number {
  return Math.max(3, Math.ceil((pods * 1.1) / maxPods));
}
