// `mailcluster operator` flags, parsed without I/O.
import { parseLabelSelector } from './resources/network-policy.ts';

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
  /** The master key from a file (made when absent) instead of a Secret. */
  masterKeyFile?: string;
  masterKeySecret: string;
  /** The operator's own namespace (master key Secret, NetworkPolicy's admin rule). */
  operatorNamespace?: string;
  operatorPodSelector: Record<string, string>;
  metricsNamespaceSelector?: Record<string, string>;
  metricsPodSelector?: Record<string, string>;
  /** How long a written Secret is trusted to be as written before it is written again. */
  secretResyncMs?: number;
  /** MailClusters rolling a pod-template change at once, operator-wide. */
  maxConcurrentRollouts: number;
  /** Reconciles running at once (work-queue workers). */
  workers: number;
}

export const DEFAULT_MAX_CONCURRENT_ROLLOUTS = 3;
/** A reconcile mostly waits on the API server: more workers than cores keep it busy (bench:scale). */
export const DEFAULT_WORKERS = 8;

export const DEFAULT_OPERATOR_POD_SELECTOR = { 'app.kubernetes.io/name': 'mailcluster-operator' };

export const USAGE = `usage: mailcluster operator [flags]
  --kubeconfig FILE                 kubeconfig to use (default: in-cluster config, else $KUBECONFIG / ~/.kube/config)
  --namespace NS                    watch only this namespace (repeatable; default: all namespaces)
  --leader-elect                    elect one active replica through a coordination.k8s.io Lease
  --leader-election-namespace NS    namespace of the Lease (default: the operator's own, else "default")
  --leader-election-id NAME         name of the Lease (default: mailcluster-operator)
  --leader-election-lease-duration D, --leader-election-renew-deadline D, --leader-election-retry-period D
                                    election timings (defaults 15s, 10s, 2s)
  --metrics-address HOST:PORT       serve /metrics, /healthz and /readyz (default 127.0.0.1:8080; "0" disables)
  --log-level LEVEL                 pino level (default info)
  --master-key-secret NAME          Secret (key "key") in the operator's namespace holding the master key that
                                    every cluster's admin token and MAILQv2 password derive from; made when
                                    absent (default mailcluster-operator-master-key)
  --master-key-file FILE            read the master key from FILE instead (made, mode 0600, when absent)
  --operator-namespace NS           the operator's namespace (default: its service account's, else "default")
  --operator-pod-selector K=V,...   labels of the operator's pods: the only pods the NetworkPolicy lets reach
                                    the nodes' admin port (default app.kubernetes.io/name=mailcluster-operator)
  --metrics-namespace-selector K=V,...  namespaces (by label) from which the admin port's /metrics may be
                                    scraped, e.g. kubernetes.io/metadata.name=monitoring (default: none)
  --metrics-pod-selector K=V,...    only these pods in those namespaces (default: all of them)
  --secret-resync D                 write each of its Secrets again after D even when unchanged, restoring
                                    one deleted or edited by hand (it cannot watch Secrets; default 10m)
  --max-concurrent-rollouts N       MailClusters that roll a pod-template change at once (an operator upgrade
                                    that changes the pods rolls the clusters a few at a time; default 3)
  --workers N                       MailClusters reconciled at once (default 8)`;

function durationMs(flag: string, value: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(value);
  if (!m) throw new Error(`${flag} ${JSON.stringify(value)}: expected a duration such as 500ms, 15s or 1m`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2]];
}

export function parseOperatorArgs(argv: string[]): OperatorArgs {
  const out: OperatorArgs = {
    namespaces: [], leaderElect: false, leaderElectionId: 'mailcluster-operator', metricsAddress: '127.0.0.1:8080', logLevel: 'info', help: false,
    masterKeySecret: 'mailcluster-operator-master-key', operatorPodSelector: { ...DEFAULT_OPERATOR_POD_SELECTOR },
    maxConcurrentRollouts: DEFAULT_MAX_CONCURRENT_ROLLOUTS, workers: DEFAULT_WORKERS,
  };
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
      case '--master-key-file': out.masterKeyFile = need(); break;
      case '--master-key-secret': out.masterKeySecret = need(); break;
      case '--operator-namespace': out.operatorNamespace = need(); break;
      case '--operator-pod-selector': out.operatorPodSelector = parseLabelSelector(need(), flag); break;
      case '--metrics-namespace-selector': out.metricsNamespaceSelector = parseLabelSelector(need(), flag); break;
      case '--metrics-pod-selector': out.metricsPodSelector = parseLabelSelector(need(), flag); break;
      case '--secret-resync': out.secretResyncMs = durationMs(flag, need()); break;
      case '--max-concurrent-rollouts': {
        const v = need();
        if (!/^[1-9][0-9]{0,5}$/.test(v)) throw new Error(`--max-concurrent-rollouts ${JSON.stringify(v)}: expected a whole number of clusters, at least 1`);
        out.maxConcurrentRollouts = Number(v);
        break;
      }
      case '--workers': {
        const v = need();
        if (!/^[1-9][0-9]{0,3}$/.test(v)) throw new Error(`--workers ${JSON.stringify(v)}: expected a whole number from 1 to 9999`);
        out.workers = Number(v);
        break;
      }
      case '-h': case '--help': out.help = true; break;
      default: throw new Error(`unknown flag ${JSON.stringify(flag)}\n${USAGE}`);
    }
  }
  if (out.metricsPodSelector && !out.metricsNamespaceSelector) throw new Error('--metrics-pod-selector needs --metrics-namespace-selector');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(out.masterKeySecret)) throw new Error(`--master-key-secret ${JSON.stringify(out.masterKeySecret)}: not a Secret name`);
  for (const ns of [...out.namespaces, ...(out.operatorNamespace ? [out.operatorNamespace] : [])]) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) throw new Error(`--namespace ${JSON.stringify(ns)}: not a namespace name`);
  }
  return out;
}
