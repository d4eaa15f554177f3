// Runs one control-plane program as a child process that cannot outlive us: it gets its own
// process group (stop() signals the whole group), a parent-death signal (setpriv
// --pdeathsig, so a crashed or SIGKILLed parent still takes it down), and an exit hook
// that kills it when this process exits without calling stop(). superviseComponent also
// starts it again when it exits on its own (the node's daemons).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

export interface ComponentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Component {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<ComponentExit>;
  running(): boolean;
  /** SIGTERM to the process group, SIGKILL after graceMs; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartComponentOptions {
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the program when this process dies (default true). */
  dieWithParent?: boolean;
}

let setprivPdeathsig: boolean | undefined;

/** Whether util-linux's setpriv can set a parent-death signal here. */
export function canSetParentDeathSignal(): boolean {
  if (setprivPdeathsig === undefined) {
    const help = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    setprivPdeathsig = process.platform === 'linux' && help.status === 0 && help.stdout.includes('--pdeathsig');
  }
  return setprivPdeathsig;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is all that is left to do here.
  process.on('exit', () => {
    for (const child of live) killGroup(child.pid, 'SIGKILL');
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export function startComponent(opts: StartComponentOptions): Component {
  installExitHook();
  const fd = openSync(opts.logFile, 'a');
  writeSync(fd, `\n==== ${new Date().toISOString()} starting ${opts.name}: ${opts.command} ${opts.args.join(' ')}\n`);
  const wrap = opts.dieWithParent !== false && canSetParentDeathSignal();
  // setpriv execs the program, so the child's pid is the program's own.
  const [cmd, argv] = wrap ? ['setpriv', ['--pdeathsig', 'KILL', '--', opts.command, ...opts.args]] : [opts.command, opts.args];
  const child = spawn(cmd, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', fd, fd],
    detached: true, // its own process group, so stop() reaches anything it forks
  });
  closeSync(fd);
  // A program meant to outlive us (dieWithParent false) is left alone by the exit hook too.
  if (opts.dieWithParent !== false) live.add(child);
  else child.unref(); // nor does it keep this process's event loop alive
  let running = true;
  const exited = new Promise<ComponentExit>((resolve) => {
    child.once('error', (err) => {
      running = false;
      live.delete(child);
      writeLog(opts.logFile, `==== ${opts.name} could not start: ${err.message}\n`);
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      running = false;
      live.delete(child);
      // Anything the program forked dies with it.
      killGroup(child.pid, 'SIGKILL');
      resolve({ code, signal });
    });
  });
  return {
    name: opts.name,
    pid: child.pid ?? -1,
    logFile: opts.logFile,
    exited,
    running: () => running,
    async stop(graceMs = 10_000) {
      if (!running) return;
      killGroup(child.pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface RestartPolicy {
  /** Delay before the first restart (default 1 s); it doubles after each up to maxDelayMs. */
  initialDelayMs?: number;
  /** Longest delay between restarts (default 30 s). */
  maxDelayMs?: number;
  /** A run at least this long starts the delays over (default 60 s). */
  resetAfterMs?: number;
  /** Asked before each restart; false leaves the program stopped (its owner is shutting down). */
  shouldRestart?: () => boolean;
  /** Told of each exit that is followed by a restart. */
  onRestart?: (exit: ComponentExit, restart: number, delayMs: number) => void;
}

export interface SupervisedComponent extends Component {
  /** How often the program was started again after it exited on its own. */
  readonly restarts: number;
}

/**
 * A program that is started again whenever it exits on its own, after a growing delay, as
 * systemd's Restart=always does for a node's daemons. pid, running() and stop() are the
 * current run's; `exited` settles only once stop() has ended it.
 */
export function superviseComponent(opts: StartComponentOptions, policy: RestartPolicy = {}): SupervisedComponent {
  const initialDelay = policy.initialDelayMs ?? 1000;
  const maxDelay = policy.maxDelayMs ?? 30_000;
  const resetAfter = policy.resetAfterMs ?? 60_000;
  let current = startComponent(opts);
  let startedAt = Date.now();
  let delay = initialDelay;
  let restarts = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let settle!: (exit: ComponentExit) => void;
  const exited = new Promise<ComponentExit>((resolve) => { settle = resolve; });
  const watch = (run: Component) => {
    void run.exited.then((exit) => {
      if (stopped || run !== current) return;
      if (policy.shouldRestart && !policy.shouldRestart()) {
        stopped = true;
        settle(exit);
        return;
      }
      if (Date.now() - startedAt >= resetAfter) delay = initialDelay;
      policy.onRestart?.(exit, restarts + 1, delay);
      timer = setTimeout(() => {
        timer = undefined;
        if (stopped) return;
        restarts++;
        current = startComponent(opts);
        startedAt = Date.now();
        watch(current);
      }, delay);
      timer.unref();
      delay = Math.min(delay * 2, maxDelay);
    });
  };
  watch(current);
  return {
    name: opts.name,
    logFile: opts.logFile,
    get pid() { return current.pid; },
    get restarts() { return restarts; },
    exited,
    running: () => current.running(),
    async stop(graceMs?: number) {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await current.stop(graceMs);
      settle(await current.exited);
    },
  };
}

function writeLog(file: string, text: string): void {
  try {
    const fd = openSync(file, 'a');
    writeSync(fd, text);
    closeSync(fd);
  } catch {
    // The log is best effort.
  }
}

/** Whether pid is a live process (a zombie, exited but not yet reaped, is not). Linux /proc. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself hold ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The last lines of a log, for error messages. */
export function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
