// `mailcluster local up`'s steps once the cluster is ready: the operator runs as the chart
// installs it on any cluster (helm, from its image), not in this process, because it must
// reach the nodes' admin ports, which exist only inside the node's namespace. Then
// examples/mailcluster.yaml is applied, and once it is Ready, Addr[0] is printed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import type { LocalCluster } from '../index.ts';
import { ensureHelm, helmOk } from '../tools/helm.ts';

const chartDir = fileURLToPath(new URL('../../../helm/mailcluster-operator', import.meta.url));
const example = fileURLToPath(new URL('../../../examples/mailcluster.yaml', import.meta.url));

export async function installOperatorWithChart(cluster: LocalCluster, print: (line: string) => void): Promise<void> {
  const helm = await ensureHelm();
  print('installing the operator with helm (chart helm/mailcluster-operator, image imported into containerd)...');
  await helmOk(helm, ['upgrade', '--install', 'mailcluster', chartDir, '--create-namespace', '--wait', '--timeout', '300s', '--values', '-'], {
    kubeconfig: cluster.kubeconfigPath, namespace: 'mailcluster-system', timeoutMs: 360_000,
    input: yaml.dump({ replicaCount: 1, image: { pullPolicy: 'Never' } }),
  });
  const text = readFileSync(example, 'utf8');
  const mc = yaml.load(text) as { metadata: { name: string; namespace?: string }; spec: { service?: { port?: number }; relayDomains?: string[] } };
  const namespace = mc.metadata.namespace ?? 'default';
  await cluster.kubectl(['apply', '-n', namespace, '-f', '-'], { input: text });
  print(`applied examples/mailcluster.yaml (MailCluster ${namespace}/${mc.metadata.name}); waiting for it to be Ready...`);
  const deadline = Date.now() + 300_000;
  for (;;) {
    const got = JSON.parse((await cluster.kubectl(['get', 'mailcluster', mc.metadata.name, '-n', namespace, '-o', 'json'])).stdout) as {
      status?: { address?: string; readyReplicas?: number; conditions?: Array<{ type: string; status: string; message?: string }> };
    };
    const ready = got.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'True' && got.status?.address) {
      const port = mc.spec.service?.port ?? 25;
      print(`MailCluster ${mc.metadata.name} is Ready: ${got.status.readyReplicas} nodes on the kubelet, Addr[0] = ${got.status.address}:${port}`);
      print(`try it:  swaks --server ${got.status.address}:${port} --to someone@${mc.spec.relayDomains?.[0] ?? 'customer.example'}`);
      return;
    }
    if (Date.now() > deadline) {
      print(`MailCluster ${mc.metadata.name} is not Ready after 5 minutes: ${ready?.message ?? 'no status yet'} (kubectl -n mailcluster-system logs deploy/mailcluster-mailcluster-operator)`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
