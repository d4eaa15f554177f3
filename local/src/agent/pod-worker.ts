// One pod on this node: lays out its volumes under a per-pod root, runs each container as a
// local process group, restarts it per restartPolicy with backoff, probes it, reports its
// status and terminates it gracefully when the pod is deleted.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { mkdir, rm, symlink, lstat, readlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import type { V1ConfigMap, V1Container, V1Pod, V1Probe, V1Secret } from '@kubernetes/client-node';
import { writeAtomically } from './atomic-writer.ts';
import { containerEnv, ContainerConfigError, expandVars } from './env.ts';
import { containerArgv } from './images.ts';
import { runProbe } from './probes.ts';
import { buildPodStatus, type ContainerRuntime, type PodRuntime } from './pod-status.ts';
import { planVolume, tokenSpecs, type TokenSpec, type VolumePlan } from './volumes.ts';
import { nextRestartDelay, type BackoffPolicy } from './backoff.ts';

export interface WorkerContext {
  log: Logger;
  hostIP: string;
  nodeAllocatable: Record<string, string>;
  /** Environment every container gets before its own env (PATH, KUBERNETES_SERVICE_*, ...). */
  baseEnv: Record<string, string>;
  backoff: BackoffPolicy;
  /** Readiness is probed this often (ms) until its first success, to make pods Ready sooner. */
  initialReadinessPollMs: number;
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  secret(namespace: string, name: string): V1Secret | undefined;
  /** The host directory of a bound claim, or undefined while it is not bound yet. */
  claimDirectory(namespace: string, claimName: string): string | undefined;
  requestToken(pod: V1Pod, spec: TokenSpec): Promise<{ token: string; expiresAt: Date }>;
  /** 'replaced': the API holds another pod of this name now (this one's status is not ours to write). */
  patchStatus(pod: V1Pod, status: Record<string, unknown>): Promise<void | 'replaced'>;
  deletePod(pod: V1Pod): Promise<void>;
  finished(worker: PodWorker): void;
}

let pdeathsig: boolean | undefined;

/** util-linux setpriv can give a child a parent-death signal: pods then die with the agent. */
function parentDeathWrapper(): string[] {
  if (pdeathsig === undefined) {
    const help = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    pdeathsig = process.platform === 'linux' && help.status === 0 && help.stdout.includes('--pdeathsig');
  }
  return pdeathsig ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function signalNumber(signal: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[signal] ?? 0;
}

export class PodWorker {
  pod: V1Pod;
  readonly uid: string;
  readonly podDir: string;
  readonly root: string;
  readonly runtime: PodRuntime;
  readonly #ctx: WorkerContext;
  readonly #log: Logger;
  readonly #containers: ContainerHandle[] = [];
  #tokens = new Map<string, { token: string; expiresAt: Date }>();
  #tokenTimer: NodeJS.Timeout | undefined;
  #terminating: Promise<void> | undefined;
  #statusInFlight = false;
  #statusAgain = false;
  #statusTimer: NodeJS.Timeout | undefined;
  #lastStatus = '';
  #statusOff = false;
  #volumesQueued = false;
  #volumesRunning: Promise<void> = Promise.resolve();

  constructor(ctx: WorkerContext, pod: V1Pod, podIP: string, podsDir: string) {
    this.#ctx = ctx;
    this.pod = pod;
    this.uid = pod.metadata!.uid!;
    const ns = pod.metadata!.namespace ?? 'default';
    this.#log = ctx.log.child({ pod: `${ns}/${pod.metadata!.name}` });
    this.podDir = join(podsDir, `${ns}_${pod.metadata!.name}_${this.uid}`);
    this.root = join(this.podDir, 'root');
    const previous = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
    const started = pod.status?.startTime;
    this.runtime = {
      podIP,
      hostIP: ctx.hostIP,
      startTime: started ? new Date(started as unknown as string) : new Date(),
      initialized: false,
      transitions: new Map(),
      containers: pod.spec!.containers.map((c) => {
        // After an agent restart the process is gone: this run counts as a restart.
        const prev = previous.get(c.name);
        const restartCount = prev ? prev.restartCount + (prev.state?.running || prev.state?.terminated ? 1 : 0) : 0;
        return { name: c.name, image: c.image ?? '', restartCount, state: { kind: 'waiting', reason: 'ContainerCreating' }, ready: false, started: false, final: false };
      }),
    };
  }

  get namespace(): string { return this.pod.metadata!.namespace ?? 'default'; }
  get name(): string { return this.pod.metadata!.name!; }
  get podIP(): string { return this.runtime.podIP!; }
  get terminating(): boolean { return this.#terminating !== undefined; }
  get pids(): number[] { return this.#containers.map((c) => c.pid).filter((p): p is number => p !== undefined); }

  /** Lays out the pod and starts its containers; returns once they are started (or the pod is stopping). */
  async start(): Promise<void> {
    await mkdir(join(this.podDir, 'logs'), { recursive: true });
    await mkdir(this.root, { recursive: true });
    this.syncStatus();
    for (let attempt = 0; !this.terminating; attempt++) {
      try {
        await this.#refreshTokens();
        await this.#layoutVolumes(true);
        break;
      } catch (err) {
        const message = (err as Error).message;
        if (attempt === 0 || attempt % 30 === 0) this.#log.warn({ err: message }, 'pod volumes not ready');
        for (const c of this.runtime.containers) c.state = { kind: 'waiting', reason: 'ContainerCreating', message };
        this.syncStatus();
        await sleep(Math.min(200 * 2 ** attempt, 2000));
      }
    }
    if (this.terminating) return;
    if (!(await this.#runInitContainers())) return;
    this.runtime.initialized = true;
    for (const [i, spec] of this.pod.spec!.containers.entries()) {
      const handle = new ContainerHandle(this, this.#ctx, spec, this.runtime.containers[i], this.#log.child({ container: spec.name }));
      this.#containers.push(handle);
      handle.start();
    }
    this.syncStatus();
  }

  /** The latest pod object from the API. */
  update(pod: V1Pod): void {
    this.pod = pod;
  }

  /** A ConfigMap or Secret changed: rewrite the file volumes (only changed ones are swapped). */
  refreshVolumes(): void {
    if (this.terminating || this.#volumesQueued) return;
    this.#volumesQueued = true;
    this.#volumesRunning = this.#volumesRunning.then(async () => {
      this.#volumesQueued = false;
      if (this.terminating) return;
      try {
        await this.#layoutVolumes(false);
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'volume refresh failed, keeping the previous content');
      }
    });
  }

  #volumeDir(name: string): string {
    return join(this.podDir, 'volumes', name);
  }

  async #layoutVolumes(initial: boolean): Promise<void> {
    const plans = new Map<string, VolumePlan>();
    const sources = {
      configMap: this.#ctx.configMap,
      secret: this.#ctx.secret,
      token: (key: string) => this.#tokens.get(key)?.token,
      nodeAllocatable: this.#ctx.nodeAllocatable,
      podIP: this.podIP,
      hostIP: this.#ctx.hostIP,
    };
    for (const volume of this.pod.spec!.volumes ?? []) plans.set(volume.name, planVolume(this.pod, volume, sources));
    const targets = new Map<string, string>();
    for (const [name, plan] of plans) {
      if (plan.kind === 'files') {
        const changed = await writeAtomically(this.#volumeDir(name), plan.payload);
        if (changed && !initial) this.#log.info({ volume: name }, 'volume updated');
        targets.set(name, this.#volumeDir(name));
      } else if (!initial) {
        continue;
      } else if (plan.kind === 'emptyDir') {
        await mkdir(this.#volumeDir(name), { recursive: true });
        targets.set(name, this.#volumeDir(name));
      } else if (plan.kind === 'claim') {
        const dir = this.#ctx.claimDirectory(this.namespace, plan.claimName);
        if (!dir) throw new ContainerConfigError(`persistentvolumeclaim "${plan.claimName}" is not bound yet`);
        targets.set(name, dir);
      } else {
        await mkdir(plan.path, { recursive: true });
        targets.set(name, plan.path);
      }
    }
    if (!initial) return;
    for (const container of [...(this.pod.spec!.initContainers ?? []), ...this.pod.spec!.containers]) {
      for (const mount of container.volumeMounts ?? []) {
        const target = targets.get(mount.name);
        if (!target) throw new ContainerConfigError(`volumeMount ${mount.name} of container ${container.name} names no volume`);
        const at = join(this.root, mount.mountPath);
        const to = mount.subPath ? join(target, mount.subPath) : target;
        if (mount.subPath) await mkdir(to, { recursive: true }).catch(() => undefined);
        await this.#link(at, to);
      }
    }
  }

  /** The mount: `<root><mountPath>` is a symlink to the volume's directory. */
  async #link(at: string, to: string): Promise<void> {
    try {
      const st = await lstat(at);
      if (st.isSymbolicLink() && (await readlink(at)) === to) return;
      await rm(at, { recursive: true, force: true });
    } catch { /* absent */ }
    await mkdir(dirname(at), { recursive: true });
    await symlink(to, at);
  }

  async #refreshTokens(): Promise<void> {
    const specs = tokenSpecs(this.pod);
    if (specs.length === 0) return;
    let nextRefresh = Infinity;
    for (const spec of specs) {
      const have = this.#tokens.get(spec.key);
      const lifetime = spec.expirationSeconds * 1000;
      // As the kubelet: renew after 80% of the token's lifetime.
      if (!have || Date.now() > have.expiresAt.getTime() - lifetime * 0.2) {
        this.#tokens.set(spec.key, await this.#ctx.requestToken(this.pod, spec));
      }
      nextRefresh = Math.min(nextRefresh, this.#tokens.get(spec.key)!.expiresAt.getTime() - lifetime * 0.2);
    }
    clearTimeout(this.#tokenTimer);
    const delay = Math.max(1000, Math.min(nextRefresh - Date.now(), 2 ** 31 - 1));
    this.#tokenTimer = setTimeout(() => {
      this.#refreshTokens().then(() => this.refreshVolumes(), (err) => this.#log.warn({ err: (err as Error).message }, 'token refresh failed'));
    }, delay);
    this.#tokenTimer.unref();
  }

  /** Runs init containers one after another to completion; false when the pod is stopping or failed. */
  async #runInitContainers(): Promise<boolean> {
    for (const spec of this.pod.spec!.initContainers ?? []) {
      let delay: number | undefined;
      for (;;) {
        if (this.terminating) return false;
        const rt: ContainerRuntime = { name: spec.name, image: spec.image ?? '', restartCount: 0, state: { kind: 'waiting', reason: 'PodInitializing' }, ready: false, started: false, final: false };
        const handle = new ContainerHandle(this, this.#ctx, spec, rt, this.#log.child({ initContainer: spec.name }), true);
        this.#containers.push(handle);
        const code = await handle.runToCompletion();
        this.#containers.splice(this.#containers.indexOf(handle), 1);
        if (code === 0) break;
        if (this.pod.spec!.restartPolicy === 'Never') {
          for (const c of this.runtime.containers) { c.final = true; c.state = { kind: 'terminated', exitCode: 1, reason: 'Init:Error', startedAt: new Date(), finishedAt: new Date() }; }
          this.syncStatus();
          return false;
        }
        delay = nextRestartDelay(this.#ctx.backoff, delay, 0);
        for (const c of this.runtime.containers) c.state = { kind: 'waiting', reason: 'PodInitializing', message: `init container ${spec.name} exited ${code}` };
        this.syncStatus();
        await sleep(delay);
      }
    }
    return true;
  }

  /** Schedules a status update; sent only when it differs from the last one sent. */
  syncStatus(): void {
    if (this.#statusTimer || this.#statusOff) return;
    this.#statusTimer = setTimeout(() => { this.#statusTimer = undefined; void this.#sendStatus(); }, 10);
  }

  async #sendStatus(): Promise<void> {
    if (this.#statusInFlight) { this.#statusAgain = true; return; }
    this.#statusInFlight = true;
    try {
      const status = buildPodStatus(this.pod, this.runtime);
      const key = JSON.stringify(status);
      if (key !== this.#lastStatus) {
        if (await this.#ctx.patchStatus(this.pod, status) === 'replaced') {
          this.#statusOff = true;
          this.#log.info('a new pod of the same name replaced this one: its status is no longer written');
          return;
        }
        this.#lastStatus = key;
      }
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== 404) {
        this.#log.warn({ err: (err as Error).message }, 'pod status update failed, retrying');
        setTimeout(() => this.syncStatus(), 1000).unref();
      }
    } finally {
      this.#statusInFlight = false;
      if (this.#statusAgain) { this.#statusAgain = false; this.syncStatus(); }
    }
  }

  /**
   * Stops every container: SIGTERM, then SIGKILL after the grace period. With `deleteFromApi`
   * (the pod was deleted gracefully) the pod object is then removed with grace 0 and the pod's
   * directory deleted; without it (the agent stops) the directory stays for the next start.
   */
  terminate(graceSeconds: number, deleteFromApi: boolean, removeFiles = deleteFromApi): Promise<void> {
    if (this.#terminating) return this.#terminating;
    // When the agent stops (no API deletion) the pod's status is left as it was.
    if (!deleteFromApi) this.#statusOff = true;
    this.#terminating = (async () => {
      clearTimeout(this.#tokenTimer);
      this.#log.info({ graceSeconds }, 'terminating pod');
      await Promise.all(this.#containers.map((c) => c.stop(graceSeconds * 1000)));
      if (deleteFromApi) {
        this.syncStatus();
        try { await this.#ctx.deletePod(this.pod); } catch (err) {
          if ((err as { code?: number }).code !== 404) this.#log.warn({ err: (err as Error).message }, 'pod delete failed');
        }
      }
      this.#statusOff = true;
      clearTimeout(this.#statusTimer);
      await this.#volumesRunning;
      if (removeFiles) await rm(this.podDir, { recursive: true, force: true });
      this.#ctx.finished(this);
    })();
    return this.#terminating;
  }

  /** Synchronous last resort at process exit: SIGKILL every process group this pod owns. */
  killNow(): void {
    for (const c of this.#containers) c.killNow();
  }

  logPath(container: string): string {
    return join(this.podDir, 'logs', `${container}.log`);
  }

  envFor(spec: V1Container): Record<string, string> {
    return containerEnv(this.pod, spec, {
      configMap: this.#ctx.configMap,
      secret: this.#ctx.secret,
      nodeAllocatable: this.#ctx.nodeAllocatable,
      podIP: this.podIP,
      hostIP: this.#ctx.hostIP,
    }, {
      ...this.#ctx.baseEnv,
      HOSTNAME: this.name,
      MAILCLUSTER_ROOT: this.root,
      MAILCLUSTER_BIND_ADDRESS: this.podIP,
    });
  }
}

/** One container: its process, restarts and probes. */
class ContainerHandle {
  readonly #pod: PodWorker;
  readonly #ctx: WorkerContext;
  readonly #spec: V1Container;
  readonly #rt: ContainerRuntime;
  readonly #log: Logger;
  readonly #init: boolean;
  #child: ChildProcess | undefined;
  #startedAt = new Date();
  #exited: Promise<void> = Promise.resolve();
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #restartDelay: number | undefined;
  #runId = 0;
  #probeGeneration = 0;
  #env: Record<string, string> = {};
  #onExit: ((code: number) => void) | undefined;

  constructor(pod: PodWorker, ctx: WorkerContext, spec: V1Container, rt: ContainerRuntime, log: Logger, init = false) {
    this.#pod = pod;
    this.#ctx = ctx;
    this.#spec = spec;
    this.#rt = rt;
    this.#log = log;
    this.#init = init;
  }

  get pid(): number | undefined { return this.#child?.pid; }

  runToCompletion(): Promise<number> {
    return new Promise((resolve) => {
      this.#onExit = resolve;
      if (!this.start()) resolve(1);
    });
  }

  /** Starts the process; false (and a waiting state) when it cannot be started now. */
  start(): boolean {
    if (this.#stopping) return false;
    let argv: string[];
    try {
      this.#env = this.#pod.envFor(this.#spec);
      argv = containerArgv(this.#spec.image ?? '', this.#spec.command?.map((a) => expandVars(a, this.#env)), this.#spec.args?.map((a) => expandVars(a, this.#env)));
    } catch (err) {
      const reason = err instanceof ContainerConfigError ? 'CreateContainerConfigError' : 'ErrImagePull';
      this.#rt.state = { kind: 'waiting', reason, message: (err as Error).message };
      this.#log.warn({ err: (err as Error).message }, 'container cannot start');
      this.#pod.syncStatus();
      if (!this.#init) this.#scheduleRestart(2000);
      return false;
    }
    const cwd = this.#spec.workingDir ? join(this.#pod.root, this.#spec.workingDir) : this.#pod.root;
    mkdirSync(cwd, { recursive: true });
    const logFd = openSync(this.#pod.logPath(this.#spec.name), 'a');
    let child: ChildProcess;
    try {
      // detached: its own process group, so that stopping it also stops what it started.
      // setpriv execs the program, so the pid is the program's own.
      const full = [...parentDeathWrapper(), ...argv];
      child = spawn(full[0], full.slice(1), { cwd, env: this.#env, stdio: ['ignore', logFd, logFd], detached: true });
    } finally {
      closeSync(logFd);
    }
    this.#child = child;
    this.#startedAt = new Date();
    this.#rt.pid = child.pid;
    this.#rt.state = child.pid ? { kind: 'running', startedAt: this.#startedAt } : { kind: 'waiting', reason: 'RunContainerError' };
    this.#rt.started = !this.#spec.startupProbe;
    this.#rt.ready = false;
    this.#log.info({ pid: child.pid, argv }, 'container started');
    const runId = ++this.#runId;
    const generation = ++this.#probeGeneration;
    let resolveExit!: () => void;
    this.#exited = new Promise((r) => { resolveExit = r; });
    child.once('error', (err) => {
      this.#log.warn({ err: err.message }, 'container failed to start');
      this.#exitedWith(runId, 128, undefined, err.message);
      resolveExit();
    });
    child.once('exit', (code, signal) => {
      this.#exitedWith(runId, code ?? (signal ? 128 + signalNumber(signal) : 1), signal ?? undefined);
      resolveExit();
    });
    if (!this.#init) this.#startProbes(generation);
    this.#pod.syncStatus();
    return true;
  }

  #exitedWith(runId: number, exitCode: number, signal: string | undefined, message?: string): void {
    if (runId !== this.#runId || this.#rt.state.kind === 'terminated') return;
    const pid = this.#child?.pid;
    // Whatever the container left behind in its process group goes with it.
    if (pid) { try { process.kill(-pid, 'SIGKILL'); } catch { /* group already gone */ } }
    this.#probeGeneration++; // stops this run's probes
    const finishedAt = new Date();
    const terminated = {
      kind: 'terminated' as const, exitCode, signal,
      reason: exitCode === 0 ? 'Completed' : 'Error',
      message,
      startedAt: this.#startedAt, finishedAt,
    };
    this.#rt.ready = false;
    this.#rt.state = terminated;
    this.#log.info({ exitCode, signal }, 'container exited');
    if (this.#onExit) { this.#onExit(exitCode); return; }
    const policy = this.#pod.pod.spec?.restartPolicy ?? 'Always';
    const restart = !this.#stopping && (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0));
    if (!restart) {
      this.#rt.final = !this.#stopping || this.#rt.final;
      this.#pod.syncStatus();
      return;
    }
    this.#rt.lastTerminated = terminated;
    this.#restartDelay = nextRestartDelay(this.#ctx.backoff, this.#restartDelay, finishedAt.getTime() - this.#startedAt.getTime());
    if (this.#restartDelay > 0) {
      this.#rt.state = { kind: 'waiting', reason: 'CrashLoopBackOff', message: `back-off ${Math.round(this.#restartDelay / 1000)}s restarting failed container=${this.#spec.name} pod=${this.#pod.name}` };
    }
    this.#pod.syncStatus();
    this.#scheduleRestart(this.#restartDelay, true);
  }

  #scheduleRestart(delayMs: number, counts = false): void {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      if (counts) this.#rt.restartCount++;
      this.start();
    }, delayMs);
  }

  #startProbes(generation: number): void {
    const live = () => generation === this.#probeGeneration && !this.#stopping;
    const ctx = () => ({ podIP: this.#pod.podIP, container: this.#spec, env: this.#env, cwd: this.#pod.root });
    const { startupProbe, readinessProbe, livenessProbe } = this.#spec;
    const afterStartup = () => {
      this.#rt.started = true;
      if (readinessProbe) {
        this.#probeLoop(readinessProbe, live, ctx, 'readiness', (ready) => {
          if (this.#rt.ready !== ready) { this.#rt.ready = ready; this.#log.info({ ready }, 'readiness changed'); this.#pod.syncStatus(); }
        });
      } else {
        this.#rt.ready = true;
        this.#pod.syncStatus();
      }
      if (livenessProbe) {
        this.#probeLoop(livenessProbe, live, ctx, 'liveness', (ok) => { if (!ok) this.#killForRestart('liveness', livenessProbe); });
      }
    };
    if (startupProbe) {
      this.#probeLoop(startupProbe, live, ctx, 'startup', (ok) => {
        if (ok) { this.#pod.syncStatus(); afterStartup(); } else this.#killForRestart('startup', startupProbe);
      }, true);
    } else {
      afterStartup();
    }
  }

  /**
   * Runs a probe after its initialDelay every periodSeconds; `report(true|false)` fires when
   * the success or failure threshold is reached. Readiness is polled faster until its first
   * success (a container that is not ready yet loses nothing by a failed probe).
   */
  #probeLoop(probe: V1Probe, live: () => boolean, ctx: () => Parameters<typeof runProbe>[1], kind: string, report: (ok: boolean) => void, once = false): void {
    const periodMs = (probe.periodSeconds ?? 10) * 1000;
    const successThreshold = probe.successThreshold ?? 1;
    const failureThreshold = probe.failureThreshold ?? 3;
    let successes = 0;
    let failures = 0;
    let everSucceeded = false;
    let state: boolean | undefined;
    const tick = async () => {
      if (!live()) return;
      const result = await runProbe(probe, ctx());
      if (!live()) return;
      if (result.ok) { successes++; failures = 0; everSucceeded = true; } else { failures++; successes = 0; }
      if (result.ok && successes >= successThreshold && state !== true) {
        state = true;
        report(true);
        if (once) return;
      } else if (!result.ok && failures >= failureThreshold && state !== false && (everSucceeded || kind !== 'readiness')) {
        this.#log.info({ probe: kind, message: result.message }, 'probe failed');
        state = false;
        report(false);
        if (kind !== 'readiness') return;
      }
      const fast = kind === 'readiness' && !everSucceeded;
      setTimeout(tick, fast ? Math.min(periodMs, this.#ctx.initialReadinessPollMs) : periodMs).unref();
    };
    setTimeout(tick, (probe.initialDelaySeconds ?? 0) * 1000).unref();
  }

  #killForRestart(kind: string, probe: V1Probe): void {
    const grace = probe.terminationGracePeriodSeconds ?? this.#pod.pod.spec?.terminationGracePeriodSeconds ?? 30;
    this.#log.info({ probe: kind }, 'container failed its probe, restarting');
    this.#probeGeneration++; // no more probes for this run; the exit handler restarts it
    void this.#signalAndWait(grace * 1000);
  }

  async #signalAndWait(graceMs: number): Promise<void> {
    const child = this.#child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid;
    try { process.kill(-pid, 'SIGTERM'); } catch { /* gone */ }
    const timer = setTimeout(() => { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Stops the container for good (pod deletion or agent stop). */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#rt.final = true;
    await this.#signalAndWait(graceMs);
    this.#rt.ready = false;
  }

  killNow(): void {
    const pid = this.#child?.pid;
    if (pid && this.#child!.exitCode === null && this.#child!.signalCode === null) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}
