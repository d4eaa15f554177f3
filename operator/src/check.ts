// `mailcluster operator check --service NAME [--namespace NS] [--path /readyz] [--timeout 60s]`:
// the chart's `helm test`. Finds the ready pods behind a Service from its selector (pod IPs and
// the target port, so it needs neither a routed ClusterIP nor EndpointSlices; local mode's
// removed process agent had neither) and passes when one answers 200 on the path.
// RBAC: get services, list pods. Exit 0 on success, 1 on failure (with the reason), 2 on bad flags.
import { CoreV1Api, type KubeConfig, type V1Pod, type V1ServicePort } from '@kubernetes/client-node';
import { ownNamespace } from './main.ts';

export interface CheckArgs { service: string; namespace?: string; path: string; timeoutMs: number }

export function parseCheckArgs(argv: string[]): CheckArgs {
  const out: Partial<CheckArgs> = { path: '/readyz', timeoutMs: 60_000 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    if (flag === '--service') out.service = value;
    else if (flag === '--namespace') out.namespace = value;
    else if (flag === '--path') out.path = value.startsWith('/') ? value : `/${value}`;
    else if (flag === '--timeout') {
      const m = /^(\d+)(ms|s|m)$/.exec(value);
      if (!m) throw new Error(`--timeout ${JSON.stringify(value)}: expected a duration such as 30s`);
      out.timeoutMs = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2]];
    } else throw new Error(`unknown flag ${JSON.stringify(flag)}`);
  }
  if (!out.service) throw new Error('--service is required');
  return out as CheckArgs;
}

export async function check(argv: string[], loadKubeConfig: (file: string | undefined) => KubeConfig): Promise<number> {
  let args: CheckArgs;
  try {
    args = parseCheckArgs(argv);
  } catch (err) {
    console.error(`mailcluster operator check: ${(err as Error).message}`);
    return 2;
  }
  const namespace = args.namespace ?? ownNamespace() ?? 'default';
  const core = loadKubeConfig(undefined).makeApiClient(CoreV1Api);
  const deadline = Date.now() + args.timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const service = await core.readNamespacedService({ name: args.service, namespace });
      const selector = Object.entries(service.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
      const port = service.spec?.ports?.[0];
      if (!selector || !port) throw new Error(`Service ${namespace}/${args.service} has no selector or no port`);
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: selector })).items.filter(isReady);
      if (pods.length === 0) last = `no ready pod behind Service ${namespace}/${args.service}`;
      for (const pod of pods) {
        const target = targetPort(pod, port);
        const ip = pod.status!.podIP!;
        const url = `http://${ip.includes(':') ? `[${ip}]` : ip}:${target}${args.path}`;
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
          if (res.status === 200) {
            console.log(`ok: ${pod.metadata?.name} ${url} answered 200`);
            return 0;
          }
          last = `${url} answered ${res.status}`;
        } catch (err) {
          last = `${url}: ${(err as Error).message}`;
        }
      }
    } catch (err) {
      const body = (err as { body?: unknown }).body;
      let message = (err as Error).message;
      try { message = (JSON.parse(String(body)) as { message?: string }).message ?? message; } catch { /* not a Status */ }
      last = message;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.error(`check failed: ${last}`);
  return 1;
}

function isReady(pod: V1Pod): boolean {
  return Boolean(pod.status?.podIP) && !pod.metadata?.deletionTimestamp && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The Service port's targetPort on this pod: a number, or a named container port. */
function targetPort(pod: V1Pod, port: V1ServicePort): number {
  const t = port.targetPort ?? port.port;
  if (typeof t === 'number') return t;
  if (/^\d+$/.test(String(t))) return Number(t);
  for (const c of pod.spec?.containers ?? []) for (const p of c.ports ?? []) if (p.name === t) return p.containerPort;
  throw new Error(`pod ${pod.metadata?.name} has no port named ${t}`);
}
