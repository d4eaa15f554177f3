// podman as this project runs it: its own storage under the cache (never the machine's
// /var/lib/containers), cgroupfs (cgroups v1, no systemd), and the rlimits this machine
// allows (DESIGN.md, Local mode: the hard nofile limit is 20000 and there is no
// CAP_SYS_RESOURCE, so podman's default nofile=1048576 makes runc fail with
// "error setting rlimit type 7: operation not permitted").
import { spawn } from 'node:child_process';

/** Where podman keeps images and run state, and with which storage driver. */
export interface PodmanStore {
  root: string;
  runroot: string;
  /** `overlay` (the kernel's overlayfs; works here) or `vfs` (full copies, anywhere). */
  driver: string;
}

/** Every container podman creates (a build step or a run) gets these limits. */
export const PODMAN_ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'] as const;

export const STORAGE_DRIVER_ENV = 'MAILCLUSTER_PODMAN_STORAGE_DRIVER';

export function podmanStore(cacheRoot: string, env: NodeJS.ProcessEnv = process.env): PodmanStore {
  return {
    root: `${cacheRoot}/podman/storage`,
    // run state is per boot: /run is a tmpfs, so a reboot never leaves stale locks behind
    runroot: '/run/mailcluster-podman',
    driver: env[STORAGE_DRIVER_ENV] || 'overlay',
  };
}

/** The global flags that select the store; they come before the podman subcommand. */
export function podmanGlobalArgs(store: PodmanStore): string[] {
  // --tmpdir: libpod's own state (alive file, events, exit codes) would go to /run/libpod
  return ['--root', store.root, '--runroot', store.runroot, '--tmpdir', `${store.runroot}/libpod`, '--storage-driver', store.driver,
    '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
}

export interface PodmanResult { stdout: string; stderr: string; code: number }

/** Runs `podman <global flags> ...args`; resolves with its output whatever the exit code. */
export function podmanRun(store: PodmanStore, args: string[], opts: { input?: string; onStderr?: (chunk: string) => void } = {}): Promise<PodmanResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', [...podmanGlobalArgs(store), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      opts.onStderr?.(d);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ stdout, stderr, code: code ?? (signal ? 128 : 1) }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Like podmanRun, but a non-zero exit is an error that quotes podman's last words. */
export async function podman(store: PodmanStore, args: string[], opts: { input?: string; onStderr?: (chunk: string) => void } = {}): Promise<string> {
  const result = await podmanRun(store, args, opts);
  if (result.code !== 0) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-15).join('\n');
    throw new Error(`podman ${args.slice(0, 2).join(' ')} failed (exit ${result.code}):\n${tail}`);
  }
  return result.stdout;
}

export async function imageExists(store: PodmanStore, ref: string): Promise<boolean> {
  return (await podmanRun(store, ['image', 'exists', ref])).code === 0;
}
