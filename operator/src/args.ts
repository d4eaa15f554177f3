// `mailcluster operator` flags, parsed without I/O.
export interface OperatorArgs {
  kubeconfig?: string;
  namespaces: string[];
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  metricsAddress?: string;
  logLevel: string;
  help: boolean;
}

export const USAGE = `usage: mailcluster operator [flags]
  --kubeconfig FILE                 kubeconfig to use (default: in-cluster config, else $KUBECONFIG / ~/.kube/config)
  --namespace NS                    watch only this namespace (repeatable; default: all namespaces)
  --leader-elect                    elect one active replica through a coordination.k8s.io Lease
  --leader-election-namespace NS    namespace of the Lease (default: the operator's own, else "default")
  --leader-election-id NAME         name of the Lease (default: mailcluster-operator)
  --leader-election-lease-duration D, --leader-election-renew-deadline D, --leader-election-retry-period D
                                    election timings (defaults 15s, 10s, 2s)
  --metrics-address HOST:PORT       serve /metrics, /healthz and /readyz (default 127.0.0.1:8080; "0" disables)
  --log-level LEVEL                 pino level (default info)`;

function durationMs(flag: string, value: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(value);
  if (!m) throw new Error(`${flag} ${JSON.stringify(value)}: expected a duration such as 500ms, 15s or 1m`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2]];
}

export function parseOperatorArgs(argv: string[]): OperatorArgs {
  const out: OperatorArgs = { namespaces: [], leaderElect: false, leaderElectionId: 'mailcluster-operator', metricsAddress: '127.0.0.1:8080', logLevel: 'info', help: false };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) { value = flag.slice(eq + 1); flag = flag.slice(0, eq); }
    const need = (): string => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--kubeconfig': out.kubeconfig = need(); break;
      case '--namespace': case '-n': out.namespaces.push(need()); break;
      case '--leader-elect': out.leaderElect = value === undefined ? true : value !== 'false'; break;
      case '--leader-election-namespace': out.leaderElectionNamespace = need(); break;
      case '--leader-election-id': out.leaderElectionId = need(); break;
      case '--leader-election-lease-duration': out.leaseDurationMs = durationMs(flag, need()); break;
      case '--leader-election-renew-deadline': out.renewDeadlineMs = durationMs(flag, need()); break;
      case '--leader-election-retry-period': out.retryPeriodMs = durationMs(flag, need()); break;
      case '--metrics-address': { const v = need(); if (v === '0' || v === '') delete out.metricsAddress; else out.metricsAddress = v; break; }
      case '--log-level': out.logLevel = need(); break;
      case '-h': case '--help': out.help = true; break;
      default: throw new Error(`unknown flag ${JSON.stringify(flag)}\n${USAGE}`);
    }
  }
  for (const ns of out.namespaces) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) throw new Error(`--namespace ${JSON.stringify(ns)}: not a namespace name`);
  }
  return out;
}
