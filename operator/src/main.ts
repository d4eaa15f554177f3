// `mailcluster operator`: runs the MailCluster controller until SIGTERM/SIGINT.
import { existsSync, readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { parseOperatorArgs, USAGE } from './args.ts';
import { Manager } from './controller/manager.ts';

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Loads the kubeconfig: a file when given, else in-cluster (service-account files under
 * MAILCLUSTER_ROOT when that is set), else the default chain. */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster(process.env.MAILCLUSTER_ROOT ?? '');
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster configured: pass --kubeconfig or run in a cluster');
  return kc;
}

/** The namespace of the service account we run as (in a pod), from its mounted file. */
export function ownNamespace(): string | undefined {
  const file = `${process.env.MAILCLUSTER_ROOT ?? ''}${SA_NAMESPACE_FILE}`;
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'check') {
    const { check } = await import('./check.ts');
    process.exit(await check(argv.slice(1), loadKubeConfig));
  }
  let args;
  try {
    args = parseOperatorArgs(argv);
  } catch (err) {
    console.error(`mailcluster operator: ${(err as Error).message}`);
    process.exit(2);
  }
  if (args.help) { console.log(USAGE); return; }
  const log = pino({ level: args.logLevel, base: { component: 'mailcluster-operator' } });
  let manager: Manager;
  try {
    const kubeConfig = loadKubeConfig(args.kubeconfig);
    const operatorNamespace = args.operatorNamespace ?? ownNamespace() ?? 'default';
    manager = new Manager({
      ...(args.secretResyncMs ? { secretResyncMs: args.secretResyncMs } : {}),
      maxConcurrentRollouts: args.maxConcurrentRollouts,
      workers: args.workers,
      masterKey: args.masterKeyFile ? { file: args.masterKeyFile } : { namespace: operatorNamespace, secretName: args.masterKeySecret },
      adminAccess: {
        operatorNamespace,
        operatorPodLabels: args.operatorPodSelector,
        ...(args.metricsNamespaceSelector ? { metricsNamespaceLabels: args.metricsNamespaceSelector } : {}),
        ...(args.metricsPodSelector ? { metricsPodLabels: args.metricsPodSelector } : {}),
      },
      kubeConfig,
      log,
      namespaces: args.namespaces,
      ...(args.metricsAddress ? { metricsAddress: args.metricsAddress } : {}),
      ...(args.leaderElect ? {
        leaderElection: {
          namespace: args.leaderElectionNamespace ?? ownNamespace() ?? 'default',
          name: args.leaderElectionId,
          ...(args.leaseDurationMs ? { leaseDurationMs: args.leaseDurationMs } : {}),
          ...(args.renewDeadlineMs ? { renewDeadlineMs: args.renewDeadlineMs } : {}),
          ...(args.retryPeriodMs ? { retryPeriodMs: args.retryPeriodMs } : {}),
        },
      } : {}),
      onLostLeadership: () => { void shutdown(1); },
    });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    process.exit(1);
  }
  let stopping = false;
  async function shutdown(code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info({ code }, 'stopping');
    const force = setTimeout(() => process.exit(code), 10_000);
    force.unref();
    try { await manager.stop(); } catch (err) { log.warn({ err: String(err) }, 'stop failed'); }
    process.exit(code);
  }
  process.on('SIGTERM', () => { void shutdown(0); });
  process.on('SIGINT', () => { void shutdown(0); });
  try {
    await manager.start();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    await shutdown(1);
  }
}
