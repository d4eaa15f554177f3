// The operator's part of local mode (`mailcluster local up`, DESIGN.md "Local mode"): install
// the CRD, run the operator in this process, apply examples/mailcluster.yaml and print Addr[0]
// with a swaks line to try it. local/'s CLI runs it as one of its `afterClusterReady` steps.
import { readFileSync } from 'node:fs';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import pino from 'pino';
import { mailClusterCrdYaml } from './api/crd.ts';
import { GROUP, PLURAL, VERSION } from './api/v1alpha1/types.ts';
import { Manager } from './controller/manager.ts';
import { DEFAULT_OPERATOR_POD_SELECTOR } from './args.ts';

/** The slice of local/'s LocalCluster this step uses. */
export interface LocalClusterHandle {
  dir: string;
  kubeConfig: KubeConfig;
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
}

const EXAMPLE = new URL('../../examples/mailcluster.yaml', import.meta.url);

export async function startOperatorInLocalMode(cluster: LocalClusterHandle, print: (line: string) => void): Promise<void> {
  print('installing the MailCluster CRD...');
  await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: mailClusterCrdYaml() });
  await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailclusters.mailcluster.io']);

  const log = pino({ base: { component: 'mailcluster-operator' } }, pino.destination({ dest: `${cluster.dir}/operator.log`, append: true, sync: false }));
  // The operator runs in this process, not in a pod: its master key is a file beside the
  // kubeconfig (kept across `local up`s, so the clusters' credentials stay the same).
  const manager = new Manager({
    kubeConfig: cluster.kubeConfig, log, metricsAddress: '127.0.0.1:0',
    masterKey: { file: `${cluster.dir}/operator-master-key` },
    adminAccess: { operatorNamespace: 'default', operatorPodLabels: { ...DEFAULT_OPERATOR_POD_SELECTOR } },
  });
  await manager.start();
  const stop = () => { void manager.stop(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  print(`operator running (log ${cluster.dir}/operator.log, metrics http://127.0.0.1:${manager.metricsPort}/metrics)`);

  const example = yaml.load(readFileSync(EXAMPLE, 'utf8')) as { metadata: { name: string; namespace?: string }; spec: { service?: { port?: number }; relayDomains?: string[] } };
  const namespace = example.metadata.namespace ?? 'default';
  await cluster.kubectl(['apply', '-n', namespace, '-f', '-'], { input: readFileSync(EXAMPLE, 'utf8') });
  print(`applied examples/mailcluster.yaml (MailCluster ${namespace}/${example.metadata.name}); waiting for it to be Ready...`);

  const custom = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
  const deadline = Date.now() + 180_000;
  for (;;) {
    const mc = await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name: example.metadata.name }) as {
      status?: { address?: string; readyReplicas?: number; conditions?: Array<{ type: string; status: string; message: string }> };
    };
    const ready = mc.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'True' && mc.status?.address) {
      const port = example.spec.service?.port ?? 25;
      const domain = example.spec.relayDomains?.[0] ?? 'customer.example';
      print(`MailCluster ${example.metadata.name} is Ready: ${mc.status.readyReplicas} nodes, Addr[0] = ${mc.status.address}:${port}`);
      print(`try it:  swaks --server ${mc.status.address}:${port} --to someone@${domain}`);
      print(`scale:   kubectl --kubeconfig ${cluster.dir}/kubeconfig scale mc ${example.metadata.name} --replicas=5`);
      return;
    }
    if (Date.now() > deadline) {
      print(`MailCluster ${example.metadata.name} is not Ready after 3 minutes: ${ready?.message ?? 'no status yet'} (see ${cluster.dir}/operator.log)`);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
