// Builds etcd, kube-apiserver, kube-controller-manager and kubectl from the pinned Go
// modules in local/go once, into a cache directory outside the repository, and reuses them.
// An override directory of existing binaries (KUBEBUILDER_ASSETS-style) skips the build.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, closeSync, statSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CONTROL_PLANE_BINARIES,
  ETCD_LDFLAGS,
  ETCD_VERSION,
  KUBERNETES_PACKAGES,
  KUBERNETES_VERSION,
  kubernetesLdflags,
  type ControlPlaneBinaryName,
} from './versions.ts';

/** Absolute paths of the four control-plane programs. */
export interface ControlPlaneBinaries {
  /** The directory that holds them. */
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  /** Where they came from: a fresh build, the cache, or an override directory. */
  source: 'built' | 'cache' | 'override';
}

export interface EnsureControlPlaneBinariesOptions {
  /** Cache root; default `${XDG_CACHE_HOME:-$HOME/.cache}/mailcluster/controlplane`. */
  cacheRoot?: string;
  /** The Go module tree; default this repository's local/go. */
  goModuleDir?: string;
  /** The `go` command; default $GO, then `go` on PATH, then /usr/local/go/bin/go. */
  go?: string;
  /** Environment to read overrides from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

export const ASSETS_ENV = 'MAILCLUSTER_CONTROLPLANE_ASSETS';
export const KUBEBUILDER_ASSETS_ENV = 'KUBEBUILDER_ASSETS';

const defaultGoModuleDir = fileURLToPath(new URL('../../go/', import.meta.url));

// Every input that changes the binaries, in a fixed order: the cache key hashes them.
const KEY_FILES = ['go.mod', 'go.sum', 'etcd/go.mod', 'etcd/go.sum', 'etcd/main.go'];

export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'mailcluster', 'controlplane');
}

/**
 * The cache directory name: the pinned versions, readable, plus a hash of every build
 * input (go.mod/go.sum of both modules, the etcd main, linker flags, platform), so that
 * any change to the pins gets a fresh directory and old ones are never reused.
 */
export function controlPlaneCacheKey(inputs: { files: Record<string, string>; platform: string }): string {
  const hash = createHash('sha256');
  hash.update(`kubernetes=${KUBERNETES_VERSION}\netcd=${ETCD_VERSION}\nplatform=${inputs.platform}\n`);
  hash.update(`ldflags=${kubernetesLdflags()}\netcd-ldflags=${ETCD_LDFLAGS}\ncgo=0\n`);
  for (const name of Object.keys(inputs.files).sort()) {
    hash.update(`file ${name} ${inputs.files[name].length}\n`);
    hash.update(inputs.files[name]);
  }
  return `kubernetes-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-${hash.digest('hex').slice(0, 16)}`;
}

export function binariesIn(dir: string, source: ControlPlaneBinaries['source']): ControlPlaneBinaries {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubectl: join(dir, 'kubectl'),
    source,
  };
}

/** The binaries missing (or not executable) in dir. */
export function missingBinaries(dir: string): ControlPlaneBinaryName[] {
  return CONTROL_PLANE_BINARIES.filter((name) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

export async function ensureControlPlaneBinaries(opts: EnsureControlPlaneBinariesOptions = {}): Promise<ControlPlaneBinaries> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[controlplane] ${line}\n`));

  const override = env[ASSETS_ENV];
  if (override) {
    const missing = missingBinaries(override);
    if (missing.length > 0) {
      throw new Error(`${ASSETS_ENV}=${override} lacks executable ${missing.join(', ')} (it needs ${CONTROL_PLANE_BINARIES.join(', ')})`);
    }
    return binariesIn(override, 'override');
  }
  const kubebuilder = env[KUBEBUILDER_ASSETS_ENV];
  if (kubebuilder) {
    // envtest's asset directories usually have no kube-controller-manager: then build ours.
    const missing = missingBinaries(kubebuilder);
    if (missing.length === 0) return binariesIn(kubebuilder, 'override');
    log(`${KUBEBUILDER_ASSETS_ENV}=${kubebuilder} lacks ${missing.join(', ')}; using the pinned build instead`);
  }

  const moduleDir = opts.goModuleDir ?? defaultGoModuleDir;
  const files: Record<string, string> = {};
  for (const name of KEY_FILES) files[name] = readFileSync(join(moduleDir, name), 'utf8');
  const key = controlPlaneCacheKey({ files, platform: `${process.platform}-${process.arch}` });
  const cacheRoot = opts.cacheRoot ?? defaultCacheRoot(env);
  const dir = join(cacheRoot, key);
  if (isComplete(dir)) return binariesIn(dir, 'cache');

  const go = findGo(env, opts.go);
  mkdirSync(cacheRoot, { recursive: true });
  const lock = await acquireBuildLock(`${dir}.lock`, log);
  try {
    // Another process may have finished the same build while we waited for the lock.
    if (isComplete(dir)) return binariesIn(dir, 'cache');
    removeAbandonedBuilds(dir);
    await build({ go, moduleDir, dir, log, env });
    return binariesIn(dir, 'built');
  } finally {
    lock.release();
  }
}

// Staging directories of builds whose process died; holding the lock, none is in use.
function removeAbandonedBuilds(dir: string): void {
  const parent = dirname(dir);
  const prefix = `${basename(dir)}.tmp-`;
  for (const name of readdirSync(parent)) {
    if (name.startsWith(prefix)) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function isComplete(dir: string): boolean {
  return existsSync(join(dir, 'manifest.json')) && missingBinaries(dir).length === 0;
}

export const GO_MISSING_MESSAGE = [
  'Go (1.26 or newer) is needed once, to build the local Kubernetes control plane',
  `(etcd ${ETCD_VERSION}, kube-apiserver/kube-controller-manager/kubectl ${KUBERNETES_VERSION}), and was not found.`,
  'Install it: download the linux tarball from the Go downloads page and unpack it to /usr/local/go',
  '(`tar -C /usr/local -xzf go1.26.*.linux-amd64.tar.gz`), or install your distribution\'s Go 1.26 package;',
  'then put /usr/local/go/bin on PATH or set GO=/path/to/go.',
  `Or point ${ASSETS_ENV} at a directory that already holds etcd, kube-apiserver, kube-controller-manager and kubectl.`,
].join('\n');

/**
 * The go command: `explicit` (or $GO) when given, which must then work; otherwise `go` on
 * PATH, then the fallbacks (the official tarball's place). Go older than 1.26 is an error.
 */
export function findGo(env: NodeJS.ProcessEnv, explicit?: string, fallbacks: string[] = ['/usr/local/go/bin/go']): string {
  const chosen = explicit ?? env.GO;
  const candidates = chosen ? [chosen] : [...(env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'go')), ...fallbacks];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const version = spawnSync(candidate, ['env', 'GOVERSION'], { encoding: 'utf8' });
    if (version.status !== 0) continue;
    const m = /^go(\d+)\.(\d+)/.exec(version.stdout.trim());
    if (m && (Number(m[1]) > 1 || Number(m[2]) >= 26)) return candidate;
    throw new Error(`${candidate} is ${version.stdout.trim()}, but the control plane needs Go 1.26 or newer.\n${GO_MISSING_MESSAGE}`);
  }
  throw new Error(chosen ? `${chosen} is not a working go command.\n${GO_MISSING_MESSAGE}` : GO_MISSING_MESSAGE);
}

async function build(args: { go: string; moduleDir: string; dir: string; log: (l: string) => void; env: NodeJS.ProcessEnv }): Promise<void> {
  const { go, moduleDir, dir, log } = args;
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const buildLog = join(staging, 'build.log');
  const env = {
    ...args.env,
    // Static, path-independent binaries; no VCS stamping (the repo is not the module's VCS).
    CGO_ENABLED: '0',
    GOFLAGS: '-trimpath -buildvcs=false',
  };
  const started = Date.now();
  log(`building the control plane once (Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}) into ${dir}`);
  log(`this takes a while: about 15-25 minutes on 2 idle cores, longer on a busy machine; log: ${buildLog}`);
  const heartbeat = setInterval(() => log(`still building (${Math.round((Date.now() - started) / 1000)} s)`), 60_000);
  try {
    const kube = Object.keys(KUBERNETES_PACKAGES) as Array<keyof typeof KUBERNETES_PACKAGES>;
    log(`go build ${kube.join(', ')}`);
    await runLogged(go, ['build', '-ldflags', kubernetesLdflags(), '-o', `${staging}/`, ...kube.map((n) => KUBERNETES_PACKAGES[n])], moduleDir, env, buildLog);
    log(`go build etcd (${Math.round((Date.now() - started) / 1000)} s so far)`);
    await runLogged(go, ['build', '-ldflags', ETCD_LDFLAGS, '-o', join(staging, 'etcd'), '.'], join(moduleDir, 'etcd'), env, buildLog);
  } finally {
    clearInterval(heartbeat);
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  writeFileSync(
    join(staging, 'manifest.json'),
    JSON.stringify({ kubernetes: KUBERNETES_VERSION, etcd: ETCD_VERSION, builtAt: new Date().toISOString(), buildSeconds: seconds }, null, 2) + '\n',
  );
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  log(`built in ${seconds} s: ${dir}`);
}

export function runLogged(cmd: string, argv: string[], cwd: string, env: NodeJS.ProcessEnv, logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = openSync(logFile, 'a');
    writeFileSync(fd, `$ (cd ${cwd} && ${cmd} ${argv.join(' ')})\n`);
    // nice: the build shares a small machine with whatever else runs.
    const child = spawn('nice', ['-n', '10', cmd, ...argv], { cwd, env, stdio: ['ignore', fd, fd] });
    child.on('error', (err) => {
      closeSync(fd);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      closeSync(fd);
      if (code === 0) return resolve();
      const tail = readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');
      reject(new Error(`${cmd} ${argv[0]} failed (${signal ?? `exit ${code}`}) in ${cwd}; last lines of ${logFile}:\n${tail}`));
    });
  });
}

// One build at a time per cache key, across processes: a lock directory holding the pid.
export async function acquireBuildLock(path: string, log: (l: string) => void, what = 'the control plane'): Promise<{ release(): void }> {
  let announced = false;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return { release: () => rmSync(path, { recursive: true, force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(path, 'pid'), 'utf8'));
    } catch {
      // The owner is between mkdir and writing its pid; look again shortly.
    }
    const stale = Number.isNaN(owner) && Date.now() - mtimeMs(path) > 10_000;
    if (stale || (Number.isInteger(owner) && owner > 0 && !alive(owner))) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      log(`another process (pid ${owner}) is building ${what}; waiting for it`);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
