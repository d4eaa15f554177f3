// Builds the real node's programs once and caches them beside the control plane's:
// kubelet, kube-proxy and kube-scheduler from local/go (the same pinned Kubernetes module as
// the control plane), containerd, its runc shim, ctr and a tiny static pause program from
// local/go/containerd (containerd's own module). Every `go build` runs under the machine's
// shared Go build lock (flock /tmp/mailcluster-go-build.lock), so two builds never fight over
// two cores.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireBuildLock, findGo, runLogged } from '../controlplane/build.ts';
import { KUBERNETES_VERSION, kubernetesLdflags } from '../controlplane/versions.ts';

export const CONTAINERD_VERSION = 'v2.2.9';
export const GO_BUILD_LOCK = '/tmp/mailcluster-go-build.lock';
/** containerd without the snapshotters that need cgo or kernel features this node does not use. */
export const CONTAINERD_TAGS = 'no_btrfs no_devmapper no_zfs';

/** Kubernetes node programs: file name -> Go package in local/go. */
export const NODE_KUBERNETES_PACKAGES = {
  kubelet: 'k8s.io/kubernetes/cmd/kubelet',
  'kube-proxy': 'k8s.io/kubernetes/cmd/kube-proxy',
  'kube-scheduler': 'k8s.io/kubernetes/cmd/kube-scheduler',
} as const;

/** containerd programs: file name -> Go package in local/go/containerd. */
export const CONTAINERD_PACKAGES = {
  containerd: 'github.com/containerd/containerd/v2/cmd/containerd',
  'containerd-shim-runc-v2': 'github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2',
  ctr: 'github.com/containerd/containerd/v2/cmd/ctr',
  pause: './pause',
} as const;

export type NodeBinaryName = keyof typeof NODE_KUBERNETES_PACKAGES | keyof typeof CONTAINERD_PACKAGES;
export const NODE_BINARIES = [...Object.keys(NODE_KUBERNETES_PACKAGES), ...Object.keys(CONTAINERD_PACKAGES)] as NodeBinaryName[];

export interface NodeBinaries {
  dir: string;
  kubelet: string;
  kubeProxy: string;
  kubeScheduler: string;
  containerd: string;
  shim: string;
  ctr: string;
  pause: string;
  source: 'built' | 'cache';
  /** Seconds each build step took (from the manifest when cached). */
  buildSeconds: Record<string, number>;
}

const goDir = fileURLToPath(new URL('../../go/', import.meta.url));
const KEY_FILES = ['go.mod', 'go.sum', 'containerd/go.mod', 'containerd/go.sum', 'containerd/pause/main.go'];

export function defaultNodeCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'mailcluster', 'node');
}

/** The cache directory name: readable pins plus a hash of every build input. */
export function nodeCacheKey(files: Record<string, string>, platform: string): string {
  const hash = createHash('sha256');
  hash.update(`kubernetes=${KUBERNETES_VERSION}\ncontainerd=${CONTAINERD_VERSION}\nplatform=${platform}\n`);
  hash.update(`ldflags=${kubernetesLdflags()}\ntags=${CONTAINERD_TAGS}\ncgo=0\n`);
  for (const name of Object.keys(files).sort()) hash.update(`file ${name} ${files[name].length}\n${files[name]}`);
  return `kubernetes-${KUBERNETES_VERSION}-containerd-${CONTAINERD_VERSION}-${hash.digest('hex').slice(0, 16)}`;
}

function binariesIn(dir: string, source: NodeBinaries['source']): NodeBinaries {
  let buildSeconds: Record<string, number> = {};
  try { buildSeconds = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).buildSeconds ?? {}; } catch { /* not yet written */ }
  return {
    dir, source, buildSeconds,
    kubelet: join(dir, 'kubelet'), kubeProxy: join(dir, 'kube-proxy'), kubeScheduler: join(dir, 'kube-scheduler'),
    containerd: join(dir, 'containerd'), shim: join(dir, 'containerd-shim-runc-v2'), ctr: join(dir, 'ctr'), pause: join(dir, 'pause'),
  };
}

const complete = (dir: string) => existsSync(join(dir, 'manifest.json')) && NODE_BINARIES.every((b) => existsSync(join(dir, b)));

export async function ensureNodeBinaries(opts: { cacheRoot?: string; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {}): Promise<NodeBinaries> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[node build] ${line}\n`));
  const files: Record<string, string> = {};
  for (const name of KEY_FILES) files[name] = readFileSync(join(goDir, name), 'utf8');
  const cacheRoot = opts.cacheRoot ?? defaultNodeCacheRoot(env);
  const dir = join(cacheRoot, nodeCacheKey(files, `${process.platform}-${process.arch}`));
  if (complete(dir)) return binariesIn(dir, 'cache');
  const go = findGo(env);
  mkdirSync(cacheRoot, { recursive: true });
  const lock = await acquireBuildLock(`${dir}.lock`, log, 'the node programs');
  try {
    if (complete(dir)) return binariesIn(dir, 'cache');
    for (const name of readdirSync(cacheRoot)) if (name.startsWith(`${basename(dir)}.tmp-`)) rmSync(join(cacheRoot, name), { recursive: true, force: true });
    const staging = `${dir}.tmp-${process.pid}`;
    mkdirSync(staging, { recursive: true });
    const buildLog = join(staging, 'build.log');
    const buildEnv = { ...env, CGO_ENABLED: '0', GOFLAGS: '-trimpath -buildvcs=false' };
    const seconds: Record<string, number> = {};
    // One program per `go build`, so each one's time is known; the Go cache shares the work.
    const step = async (name: string, moduleDir: string, args: string[]) => {
      const started = Date.now();
      log(`go build ${name} (waits for ${GO_BUILD_LOCK} while another build holds it)`);
      await runLogged('flock', [GO_BUILD_LOCK, go, 'build', ...args], moduleDir, buildEnv, buildLog);
      seconds[name] = Math.round((Date.now() - started) / 100) / 10;
      log(`built ${name} in ${seconds[name]} s`);
    };
    for (const [name, pkg] of Object.entries(NODE_KUBERNETES_PACKAGES)) {
      await step(name, goDir, ['-ldflags', kubernetesLdflags(), '-o', join(staging, name), pkg]);
    }
    for (const [name, pkg] of Object.entries(CONTAINERD_PACKAGES)) {
      await step(name, join(goDir, 'containerd'), ['-tags', CONTAINERD_TAGS, '-ldflags', '-s -w', '-o', join(staging, name), pkg]);
    }
    writeFileSync(join(staging, 'manifest.json'), JSON.stringify({
      kubernetes: KUBERNETES_VERSION, containerd: CONTAINERD_VERSION, builtAt: new Date().toISOString(), buildSeconds: seconds,
    }, null, 2) + '\n');
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    return binariesIn(dir, 'built');
  } finally {
    lock.release();
  }
}

/** Run directly: builds (or finds) the node programs and prints where they are. */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  const b = await ensureNodeBinaries();
  console.log(JSON.stringify({ ...b, wallSeconds: (Date.now() - started) / 1000 }, null, 2));
}
