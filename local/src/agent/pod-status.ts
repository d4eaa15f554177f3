// A pod's status as the kubelet reports it, computed from what the agent knows about its
// processes. Pure; the agent sends it through the status subresource only when it changed.
import type { V1Pod } from '@kubernetes/client-node';

export type ContainerState =
  | { kind: 'waiting'; reason: string; message?: string }
  | { kind: 'running'; startedAt: Date }
  | { kind: 'terminated'; exitCode: number; signal?: string; reason: string; message?: string; startedAt: Date; finishedAt: Date };

export interface ContainerRuntime {
  name: string;
  image: string;
  restartCount: number;
  state: ContainerState;
  lastTerminated?: Extract<ContainerState, { kind: 'terminated' }>;
  ready: boolean;
  started: boolean;
  /** True once the container will not run again (restartPolicy says so). */
  final: boolean;
  pid?: number;
}

export interface PodRuntime {
  podIP?: string;
  hostIP: string;
  startTime: Date;
  containers: ContainerRuntime[];
  /** Set while volumes or config cannot be prepared; shown as the containers' waiting message. */
  initialized: boolean;
  /** Condition type -> the status it had and when it last changed (stable lastTransitionTime). */
  transitions: Map<string, { status: string; at: Date }>;
}

export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function containerStateJson(state: ContainerState): Record<string, unknown> {
  switch (state.kind) {
    case 'waiting': return { waiting: { reason: state.reason, ...(state.message ? { message: state.message } : {}) } };
    case 'running': return { running: { startedAt: rfc3339(state.startedAt) } };
    case 'terminated': return {
      terminated: {
        exitCode: state.exitCode, reason: state.reason,
        ...(state.message ? { message: state.message } : {}),
        startedAt: rfc3339(state.startedAt), finishedAt: rfc3339(state.finishedAt),
      },
    };
  }
}

export function podPhase(runtime: PodRuntime): 'Pending' | 'Running' | 'Succeeded' | 'Failed' {
  const cs = runtime.containers;
  if (cs.length > 0 && cs.every((c) => c.final)) {
    return cs.every((c) => c.state.kind === 'terminated' && c.state.exitCode === 0) ? 'Succeeded' : 'Failed';
  }
  if (cs.some((c) => c.state.kind === 'running' || c.restartCount > 0 || c.lastTerminated || c.final)) return 'Running';
  return 'Pending';
}

/** Records a condition's status and returns its stable lastTransitionTime. */
function transition(runtime: PodRuntime, type: string, status: string, now: Date): string {
  const prev = runtime.transitions.get(type);
  if (!prev || prev.status !== status) runtime.transitions.set(type, { status, at: now });
  return rfc3339(runtime.transitions.get(type)!.at);
}

export function buildPodStatus(pod: V1Pod, runtime: PodRuntime, now = new Date()): Record<string, unknown> {
  const phase = podPhase(runtime);
  const containersReady = runtime.containers.length > 0 && runtime.containers.every((c) => c.ready);
  const reason = (cs: ContainerRuntime[]): Record<string, string> => {
    const notReady = cs.filter((c) => !c.ready).map((c) => c.name);
    return notReady.length ? { reason: 'ContainersNotReady', message: `containers with unready status: [${notReady.join(' ')}]` } : {};
  };
  const cond = (type: string, ok: boolean, extra: Record<string, string> = {}) => {
    const status = ok ? 'True' : 'False';
    // null clears a reason/message left from an earlier state (the update is a strategic merge).
    return { type, status, lastProbeTime: null, lastTransitionTime: transition(runtime, type, status, now), reason: null, message: null, ...(ok ? {} : extra) };
  };
  const completed = phase === 'Succeeded' || phase === 'Failed';
  const conditions = [
    cond('PodReadyToStartContainers', runtime.podIP !== undefined),
    cond('Initialized', runtime.initialized),
    cond('Ready', containersReady, completed ? { reason: 'PodCompleted' } : reason(runtime.containers)),
    cond('ContainersReady', containersReady, completed ? { reason: 'PodCompleted' } : reason(runtime.containers)),
    cond('PodScheduled', true),
  ];
  const status: Record<string, unknown> = {
    phase,
    conditions,
    hostIP: runtime.hostIP,
    hostIPs: [{ ip: runtime.hostIP }],
    startTime: rfc3339(runtime.startTime),
    qosClass: pod.status?.qosClass,
    containerStatuses: runtime.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      containerID: c.pid !== undefined ? `local://${c.pid}` : undefined,
      ready: c.ready,
      started: c.state.kind === 'running' ? c.started : false,
      restartCount: c.restartCount,
      state: containerStateJson(c.state),
      lastState: c.lastTerminated ? containerStateJson(c.lastTerminated) : {},
    })),
  };
  if (runtime.podIP) {
    status.podIP = runtime.podIP;
    status.podIPs = [{ ip: runtime.podIP }];
  }
  return JSON.parse(JSON.stringify(status)); // drops undefined fields, so comparisons are stable
}
