// Builds Kubernetes' own scalability tooling from the pinned Go modules in local/go, once,
// into a cache beside the control plane's: kubemark (hollow nodes: a real kubelet over a fake
// container runtime) and kube-scheduler (the same program local mode's node builds for itself,
// local/src/node/build.ts, into its own cache). Used by test/bench/scale; built under the
// machine-wide Go build lock.
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireBuildLock, defaultCacheRoot, findGo, runLogged } from './build.ts';
import { KUBERNETES_VERSION, kubernetesLdflags } from './versions.ts';

export const BENCH_TOOL_PACKAGES = {
  kubemark: 'k8s.io/kubernetes/cmd/kubemark',
  'kube-scheduler': 'k8s.io/kubernetes/cmd/kube-scheduler',
} as const;
export type BenchToolName = keyof typeof BENCH_TOOL_PACKAGES;

export interface BenchTools {
  dir: string;
  kubemark: string;
  kubeScheduler: string;
  source: 'built' | 'cache';
  /** Seconds each build took, when built now. */
  buildSeconds?: Partial<Record<BenchToolName, number>>;
}

/** Where other Go builds of the project wait for each other (team rule: one at a time). */
export const GO_BUILD_LOCK = '/tmp/mailcluster-go-build.lock';

const defaultGoModuleDir = fileURLToPath(new URL('../../go/', import.meta.url));

/** Cache directory name: the release plus a hash of go.mod, go.sum, ldflags and platform. */
export function benchToolsCacheKey(files: { goMod: string; goSum: string }, platform: string): string {
  const hash = createHash('sha256');
  hash.update(`kubernetes=${KUBERNETES_VERSION}\nplatform=${platform}\nldflags=${kubernetesLdflags()}\ncgo=0\n`);
  hash.update(`go.mod ${files.goMod.length}\n${files.goMod}go.sum ${files.goSum.length}\n${files.goSum}`);
  return `kubernetes-${KUBERNETES_VERSION}-${hash.digest('hex').slice(0, 16)}`;
}

function complete(dir: string): boolean {
  if (!existsSync(join(dir, 'manifest.json'))) return false;
  try {
    for (const name of Object.keys(BENCH_TOOL_PACKAGES)) accessSync(join(dir, name), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const toolsIn = (dir: string, source: BenchTools['source']): BenchTools => ({ dir, kubemark: join(dir, 'kubemark'), kubeScheduler: join(dir, 'kube-scheduler'), source });

export async function ensureBenchTools(opts: { env?: NodeJS.ProcessEnv; goModuleDir?: string; log?: (line: string) => void } = {}): Promise<BenchTools> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[bench-tools] ${line}\n`));
  const moduleDir = opts.goModuleDir ?? defaultGoModuleDir;
  const key = benchToolsCacheKey({ goMod: readFileSync(join(moduleDir, 'go.mod'), 'utf8'), goSum: readFileSync(join(moduleDir, 'go.sum'), 'utf8') }, `${process.platform}-${process.arch}`);
  const root = join(defaultCacheRoot(env), '..', 'bench-tools');
  const dir = join(root, key);
  if (complete(dir)) return toolsIn(dir, 'cache');
  const go = findGo(env);
  mkdirSync(root, { recursive: true });
  const lock = await acquireBuildLock(`${dir}.lock`, log, 'kubemark and kube-scheduler');
  try {
    if (complete(dir)) return toolsIn(dir, 'cache');
    const staging = `${dir}.tmp-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const buildLog = join(staging, 'build.log');
    const buildEnv = { ...env, CGO_ENABLED: '0', GOFLAGS: '-trimpath -buildvcs=false' };
    const seconds: Partial<Record<BenchToolName, number>> = {};
    for (const [name, pkg] of Object.entries(BENCH_TOOL_PACKAGES) as Array<[BenchToolName, string]>) {
      log(`go build ${pkg} (waits for ${GO_BUILD_LOCK}; log ${buildLog})`);
      const started = Date.now();
      // The lock is taken per binary, so another helper's build may run in between.
      await runLogged('flock', [GO_BUILD_LOCK, go, 'build', '-ldflags', kubernetesLdflags(), '-o', join(staging, name), pkg], moduleDir, buildEnv, buildLog);
      seconds[name] = Math.round((Date.now() - started) / 1000);
      log(`${name} built in ${seconds[name]} s (lock wait included)`);
    }
    writeFileSync(join(staging, 'manifest.json'), JSON.stringify({ kubernetes: KUBERNETES_VERSION, builtAt: new Date().toISOString(), buildSeconds: seconds }, null, 2) + '\n');
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    return { ...toolsIn(dir, 'built'), buildSeconds: seconds };
  } finally {
    lock.release();
  }
}
