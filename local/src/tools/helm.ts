// The helm CLI for the chart's tests and for users of local mode: built once from the pinned
// Go module in local/go/helm into a cache directory outside the repository (keyed by helm's
// version), then reused. MAILCLUSTER_HELM=/path/to/helm skips the build. Run directly, it is helm:
//   node_modules/.bin/node local/src/tools/helm.ts install mailcluster helm/mailcluster-operator
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireBuildLock, findGo, runLogged } from '../controlplane/build.ts';

export const HELM_OVERRIDE_ENV = 'MAILCLUSTER_HELM';
export const HELM_MODULE = 'helm.sh/helm/v3';

const defaultGoModuleDir = fileURLToPath(new URL('../../go/helm/', import.meta.url));

/** helm's version as pinned by `require helm.sh/helm/v3 vX.Y.Z` in the go.mod text. */
export function helmVersionFromGoMod(goMod: string): string {
  const m = /^\s*(?:require\s+)?helm\.sh\/helm\/v3\s+(v\d+\.\d+\.\d+\S*)/m.exec(goMod);
  if (!m) throw new Error(`go.mod does not require ${HELM_MODULE} at a version`);
  return m[1];
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/mailcluster/tools/helm-<version>`. */
export function helmToolDir(version: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'mailcluster', 'tools', `helm-${version}`);
}

/** The k8s.io/client-go version in the go.mod text (helm's release build derives its default Kubernetes version from it). */
export function clientGoVersionFromGoMod(goMod: string): string {
  const m = /^\s*(?:require\s+)?k8s\.io\/client-go\s+v(\d+\.\d+\.\d+)/m.exec(goMod);
  if (!m) throw new Error('go.mod does not require k8s.io/client-go at a version');
  return m[1];
}

/**
 * The linker flags of helm's own release build (its Makefile): the version, a clean tree, and
 * the default Kubernetes version that `helm template`/`helm lint` assume without a cluster,
 * from client-go v0.X.Y -> Kubernetes 1.X (otherwise helm assumes v1.20).
 */
export function helmLdflags(version: string, clientGoVersion: string): string {
  const minor = clientGoVersion.split('.')[1];
  return [
    '-s -w',
    `-X helm.sh/helm/v3/internal/version.version=${version}`,
    '-X helm.sh/helm/v3/internal/version.metadata=',
    '-X helm.sh/helm/v3/internal/version.gitTreeState=clean',
    '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
    `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}`,
    '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
    `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}`,
  ].join(' ');
}

export interface Helm {
  /** The helm executable. */
  path: string;
  version: string;
  source: 'built' | 'cache' | 'override';
}

export interface EnsureHelmOptions {
  /** The Go module that pins helm; default this repository's local/go/helm. */
  goModuleDir?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export async function ensureHelm(opts: EnsureHelmOptions = {}): Promise<Helm> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[helm] ${line}\n`));
  const moduleDir = opts.goModuleDir ?? defaultGoModuleDir;
  const goMod = readFileSync(join(moduleDir, 'go.mod'), 'utf8');
  const version = helmVersionFromGoMod(goMod);
  const ldflags = helmLdflags(version, clientGoVersionFromGoMod(goMod));

  const override = env[HELM_OVERRIDE_ENV];
  if (override) {
    if (!executable(override)) throw new Error(`${HELM_OVERRIDE_ENV}=${override} is not an executable file`);
    return { path: override, version, source: 'override' };
  }

  const dir = helmToolDir(version, env);
  const path = join(dir, 'helm');
  if (isComplete(dir, ldflags)) return { path, version, source: 'cache' };

  mkdirSync(join(dir, '..'), { recursive: true });
  const lock = await acquireBuildLock(`${dir}.lock`, log);
  try {
    if (isComplete(dir, ldflags)) return { path, version, source: 'cache' };
    await buildHelm({ go: findGo(env), moduleDir, dir, version, ldflags, env, log });
    return { path, version, source: 'built' };
  } finally {
    lock.release();
  }
}

// A cached build counts only when it was linked with the same flags (a changed pin rebuilds).
function isComplete(dir: string, ldflags: string): boolean {
  if (!executable(join(dir, 'helm'))) return false;
  try {
    return (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { ldflags?: string }).ldflags === ldflags;
  } catch {
    return false;
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function buildHelm(args: { go: string; moduleDir: string; dir: string; version: string; ldflags: string; env: NodeJS.ProcessEnv; log: (l: string) => void }): Promise<void> {
  const { go, moduleDir, dir, version, ldflags, log } = args;
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const buildLog = join(staging, 'build.log');
  const env = { ...args.env, CGO_ENABLED: '0', GOFLAGS: '-trimpath -buildvcs=false -mod=readonly' };
  const started = Date.now();
  log(`building helm ${version} once from ${HELM_MODULE} into ${dir} (a few minutes on 2 cores); log: ${buildLog}`);
  const heartbeat = setInterval(() => log(`still building helm (${Math.round((Date.now() - started) / 1000)} s)`), 60_000);
  try {
    await runLogged(go, ['build', '-ldflags', ldflags, '-o', join(staging, 'helm'), `${HELM_MODULE}/cmd/helm`], moduleDir, env, buildLog);
  } finally {
    clearInterval(heartbeat);
  }
  const buildSeconds = Math.round((Date.now() - started) / 1000);
  writeFileSync(join(staging, 'manifest.json'), JSON.stringify({ helm: version, ldflags, builtAt: new Date().toISOString(), buildSeconds }, null, 2) + '\n');
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  log(`built helm ${version} in ${buildSeconds} s: ${join(dir, 'helm')}`);
}

export interface RunHelmOptions {
  kubeconfig?: string;
  namespace?: string;
  /** Written to helm's stdin. */
  input?: string;
  /** Killed after this long (default 5 minutes). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface HelmResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs helm with its own config/cache/data homes (next to the binary, so a user's
 * ~/.config/helm is neither read nor written) and the given kubeconfig and namespace.
 */
export function runHelm(helm: Helm, args: string[], opts: RunHelmOptions = {}): Promise<HelmResult> {
  const home = join(helm.path, '..', 'home');
  const argv = [...args];
  if (opts.kubeconfig) argv.push('--kubeconfig', opts.kubeconfig);
  if (opts.namespace) argv.push('--namespace', opts.namespace);
  const env = {
    ...(opts.env ?? process.env),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(helm.path, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // helm may exit before reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** runHelm that throws (with helm's own message) unless helm exits 0; returns stdout. */
export async function helmOk(helm: Helm, args: string[], opts: RunHelmOptions = {}): Promise<string> {
  const r = await runHelm(helm, args, opts);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr || r.stdout}`);
  return r.stdout;
}

// `node local/src/tools/helm.ts <helm args…>`: build helm if needed, then run it with the
// terminal attached (the user's own helm config, unlike runHelm).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const helm = await ensureHelm();
  const child = spawn(helm.path, process.argv.slice(2), { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
