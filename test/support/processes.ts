// Child processes and temp dirs that the harness starts, and their safety nets:
// every tracked child is killed and every tracked dir removed at mocha's global
// teardown (hooks.ts) and, for benchmarks run outside mocha, when this process exits.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atTeardown, runTeardowns } from './hooks.ts';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

function killAllSync(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
  }
  children.clear();
  for (const dir of dirs) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
  dirs.clear();
}

process.on('exit', killAllSync);
// A SIGTERM or SIGHUP ends Node without 'exit' handlers or mocha's teardown: run the registered
// teardowns first (a kubelet node's namespace, mounts and shims are undone only by its stop),
// bounded, then kill the children and let the signal end this process as it would have (unless
// someone else handles it, as a bench does). A second signal meanwhile ends it at once.
const SIGNAL_TEARDOWN_MS = 60_000;
for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    const finish = () => {
      clearTimeout(bound);
      killAllSync();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    const bound = setTimeout(finish, SIGNAL_TEARDOWN_MS);
    void runTeardowns().then(finish, finish);
  });
}
atTeardown(async () => {
  await Promise.all([...children].map((c) => stopChild(c, 'SIGTERM', 3000)));
  killAllSync();
});

/** Spawns a child that is killed at teardown or process exit at the latest. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // A spawn failure (ENOENT) is reported through exit/`exited`, not as an unhandled error.
  child.on('error', () => { /* surfaced by exited() / readiness waits */ });
  return child;
}

export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves when the child has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (!isRunning(child) || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
}

/** Sends `signal`, waits up to `graceMs` for the exit, then SIGKILLs and waits. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (!isRunning(child) || child.pid === undefined) return;
  const done = exited(child);
  child.kill(signal);
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
  if ((await Promise.race([done.then(() => 'exited' as const), timer])) === 'timeout') {
    child.kill('SIGKILL');
    await done;
  }
}

/** A fresh temp dir, removed at teardown or process exit unless `removeTempDir` ran first. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mailcluster-${prefix}-`));
  dirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  dirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until it returns true, at most `timeoutMs`; throws `what` with the
 * last probe error otherwise. `abort` stops early (for example: the process died).
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean> | boolean,
  { timeoutMs = 10000, intervalMs = 50, abort }: { timeoutMs?: number; intervalMs?: number; abort?: () => string | undefined } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const why = abort?.();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** True when a TCP connection to address:port succeeds. */
export function canConnect(address: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `/proc/net/tcp`'s form of an IPv4 address and port: little-endian hex, e.g. `0100007F:0019`. */
export function procNetTcpKey(address: string, port: number): string {
  const hex = address.split('.').map((p) => Number(p).toString(16).padStart(2, '0').toUpperCase()).reverse().join('');
  return `${hex}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
}

/**
 * True when a socket is in LISTEN state on address:port. Read from /proc/net/tcp, so
 * that probing makes no connection (a probe through haproxy would reach a backend,
 * a probe of smtp-sink would count as a session).
 */
export function isListening(address: string, port: number): boolean {
  const key = procNetTcpKey(address, port);
  const lines = readFileSync('/proc/net/tcp', 'latin1').split('\n');
  return lines.some((line) => {
    const cols = line.trim().split(/\s+/);
    return cols[1] === key && cols[3] === '0A';
  });
}

/** Throws when something already listens on address:port (a fixed port we are about to bind). */
export function assertPortFree(address: string, port: number, who: string): void {
  if (isListening(address, port)) throw new Error(`${who}: ${address}:${port} is already in use (another test or benchmark running?)`);
}

/**
 * Takes a machine-wide lock `name` for this process (a pid file in the temp dir), so two
 * runs of a benchmark with fixed addresses do not collide; throws naming the holder.
 */
export function takeLock(name: string): void {
  const path = join(tmpdir(), `mailcluster-${name}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      process.on('exit', () => { try { rmSync(path, { force: true }); } catch { /* gone */ } });
      return;
    } catch {
      const holder = Number(readFileSync(path, 'utf8'));
      let alive = false;
      try { process.kill(holder, 0); alive = true; } catch { /* stale */ }
      if (alive && holder !== process.pid) throw new Error(`${name} is already running as pid ${holder} (lock ${path})`);
      rmSync(path, { force: true });
    }
  }
  throw new Error(`cannot take lock ${path}`);
}

/** Waits until something listens on address:port (without connecting to it). */
export function waitForPort(address: string, port: number, options: { timeoutMs?: number; abort?: () => string | undefined } = {}): Promise<void> {
  return waitUntil(`${address}:${port} to listen`, () => isListening(address, port), { intervalMs: 25, ...options });
}

/** Keeps the last `max` characters of a stream, for error messages. */
export function tailOf(stream: NodeJS.ReadableStream | null | undefined, max = 4000): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer | string) => {
    text = (text + chunk.toString()).slice(-max);
  });
  return () => text;
}

/** Why a child can no longer become ready, or undefined while it runs. */
export function deathReason(child: ChildProcess, stderrTail: () => string): string | undefined {
  if (isRunning(child)) return undefined;
  if (child.pid === undefined) return `process could not start (${child.spawnfile} missing?)`;
  return `process exited (code ${child.exitCode}, signal ${child.signalCode}): ${stderrTail().trim() || '(no stderr)'}`;
}
