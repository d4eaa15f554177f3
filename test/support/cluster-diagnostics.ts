// What a failed e2e test prints about the shared local cluster, so that a failure in CI (where
// the cluster's directory is gone once the run ends) says why: the node's conditions and
// taints, every pod that is not running and ready or is being deleted, the recent Warning
// events, the node's programs and their restarts, and the error lines at the end of the
// kubelet's, containerd's, kube-proxy's, the controller-manager's and local mode's logs. Each part is bounded in time and size; a part that cannot be had
// (the API server is down) says so and the others still print.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../../local/src/index.ts';

const KUBECTL_TIMEOUT_MS = 15_000;
const LOG_TAIL_BYTES = 256 * 1024;

export async function clusterDiagnostics(cluster: LocalCluster): Promise<string> {
  const parts: string[] = [];
  const kubectl = async (title: string, args: string[], shape: (stdout: string) => string = (s) => s): Promise<void> => {
    try {
      const { stdout } = await cluster.kubectl(args, { timeoutMs: KUBECTL_TIMEOUT_MS });
      parts.push(`--- ${title}\n${shape(stdout).trimEnd()}`);
    } catch (err) {
      parts.push(`--- ${title}: not available: ${(err as Error).message.split('\n')[0]}`);
    }
  };
  await kubectl('nodes: conditions and taints', ['get', 'nodes', '-o', 'json'], nodeSummary);
  await kubectl('pods not running and ready, or being deleted', ['get', 'pods', '-A', '-o', 'json'], podSummary);
  await kubectl('recent Warning events', ['get', 'events', '-A', '--field-selector', 'type=Warning', '--sort-by=.lastTimestamp'], (s) => lastLines(s, 30));
  const node = cluster.kubeletNode;
  if (node) {
    parts.push(`--- the node's programs\n${node.programs().map((p) => `${p.name} pid ${p.pid} ${p.running ? 'running' : 'NOT RUNNING'}, restarted ${p.restarts} time(s)`).join('\n')}`);
    for (const name of ['kubelet', 'containerd', 'kube-proxy']) parts.push(errorLinesAtEnd(`${name} log`, join(node.layout.logs, `${name}.log`)));
  }
  parts.push(errorLinesAtEnd('kube-controller-manager log', join(cluster.controlPlane.dir, 'logs', 'kube-controller-manager.log')));
  parts.push(errorLinesAtEnd('local mode log', join(cluster.dir, 'local.log')));
  return parts.join('\n');
}

interface Condition { type?: string; status?: string; reason?: string; lastTransitionTime?: string }
interface NodeJson { metadata?: { name?: string }; spec?: { taints?: Array<{ key?: string; effect?: string }>; unschedulable?: boolean }; status?: { conditions?: Condition[] } }
interface ContainerStatus { name?: string; ready?: boolean; restartCount?: number; state?: Record<string, { reason?: string; exitCode?: number; message?: string }> }
interface PodJson {
  metadata?: { namespace?: string; name?: string; deletionTimestamp?: string; creationTimestamp?: string };
  spec?: { nodeName?: string };
  status?: { phase?: string; reason?: string; conditions?: Condition[]; containerStatuses?: ContainerStatus[]; initContainerStatuses?: ContainerStatus[] };
}

/** One line per node: its conditions that are not as wanted, and its taints. */
export function nodeSummary(json: string): string {
  const items = (JSON.parse(json) as { items?: NodeJson[] }).items ?? [];
  if (items.length === 0) return '(no node)';
  return items.map((n) => {
    const conds = (n.status?.conditions ?? []).map((c) => `${c.type}=${c.status}${c.reason ? `(${c.reason})` : ''}@${c.lastTransitionTime ?? '?'}`).join(' ');
    const taints = (n.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`).join(',') || 'none';
    return `${n.metadata?.name}: ${conds}; taints ${taints}${n.spec?.unschedulable ? '; unschedulable' : ''}`;
  }).join('\n');
}

/** One line per pod that is not Running with every container ready, or that is being deleted. */
export function podSummary(json: string): string {
  const items = (JSON.parse(json) as { items?: PodJson[] }).items ?? [];
  const lines = items.filter((p) => {
    const ready = p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    return Boolean(p.metadata?.deletionTimestamp) || !(p.status?.phase === 'Running' && ready) && p.status?.phase !== 'Succeeded';
  }).map((p) => {
    const containers = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].map((c) => {
      const [state, detail] = Object.entries(c.state ?? {})[0] ?? ['?', {}];
      const why = [detail.reason, detail.exitCode !== undefined ? `exit ${detail.exitCode}` : undefined, detail.message?.slice(0, 120)].filter(Boolean).join(' ');
      return `${c.name}:${state}${why ? `(${why})` : ''} ready=${c.ready} restarts=${c.restartCount}`;
    }).join(' ');
    const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
    return `${p.metadata?.namespace}/${p.metadata?.name} ${p.status?.phase ?? '?'}${p.status?.reason ? `(${p.status.reason})` : ''}` +
      ` created ${p.metadata?.creationTimestamp ?? '?'}${p.metadata?.deletionTimestamp ? ` deleting since ${p.metadata.deletionTimestamp}` : ''}` +
      `${scheduled?.status === 'False' ? ` unscheduled(${scheduled.reason})` : ''} ${containers}`.trimEnd();
  });
  return lines.length ? lines.join('\n') : '(every pod is running and ready)';
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** The last error and warning lines of a log: klog's E/W, containerd's level=, pino's numeric levels 40-60. */
function errorLinesAtEnd(title: string, path: string): string {
  if (!existsSync(path)) return `--- ${title}: no file ${path}`;
  const size = statSync(path).size;
  const start = Math.max(0, size - LOG_TAIL_BYTES);
  const buffer = Buffer.alloc(size - start);
  const fd = openSync(path, 'r');
  try { readSync(fd, buffer, 0, buffer.length, start); } finally { closeSync(fd); }
  const lines = buffer.toString('utf8').split('\n').filter((l) => /^[EW]\d{4} /.test(l) || /level=(error|warning)|"level":(40|50|60)\b/.test(l));
  return `--- ${title} (errors and warnings, last 25 of the last ${Math.round(buffer.length / 1024)} KiB)\n${lines.slice(-25).map((l) => l.slice(0, 400)).join('\n') || '(none)'}`;
}
