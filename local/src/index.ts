// Local mode's programmatic API: one real single-machine Kubernetes (control plane, the real
// node -- kubelet, containerd and runc in a network namespace, local/src/node -- and the
// LoadBalancer) driven from this process, for `mailcluster local up` and for the tests.
//
//   const cluster = await startLocalCluster({ dir: '.local', lbRange: '127.31.0.0/16', images });
//   await cluster.kubectl(['get', 'nodes']);
//   await cluster.stop();
//
// Layout of `dir`: controlplane/ (etcd data, PKI, kubeconfigs, component logs), node/ (the
// node's programs' state and logs, node/volumes/ the PersistentVolumes), kubeconfig (-> the
// admin kubeconfig), local.log.
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { startControlPlane, type ControlPlane, type StartControlPlaneOptions } from './controlplane/index.ts';
import { LoadBalancerController } from './loadbalancer/controller.ts';
import type { KubeletNode } from './node/node.ts';

export interface LocalClusterOptions {
  /** State directory; created. Reusing it keeps the cluster's objects (etcd data). */
  dir: string;
  /** LoadBalancer addresses (CIDR inside 127.0.0.0/8); default 127.31.0.0/16. */
  lbRange?: string;
  /** Logger for the node and the load balancer; default pino JSON to <dir>/local.log. */
  log?: Logger;
  /** Control-plane progress lines; default into the same log. */
  controlPlaneLog?: (line: string) => void;
  /** Passed to startControlPlane (binaries, ports, etcd fsync, extra flags). */
  controlPlane?: Partial<Omit<StartControlPlaneOptions, 'dir' | 'log'>>;
  nodeName?: string;
  /**
   * What runs the pods: `kubelet` (default) a real kubelet with containerd and runc in a
   * network namespace (local/src/node), which needs root and runs images imported from
   * `npm run images`; `none` the control plane and load balancer alone (tests that need no
   * pods, without root).
   */
  node?: 'kubelet' | 'none';
  /** With `node: 'kubelet'`: OCI archives to import into containerd (default none). */
  images?: string[];
}

export interface LocalCluster {
  dir: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  /** https://127.0.0.1:<port> */
  server: string;
  /** The built kubectl binary. */
  kubectlPath: string;
  controlPlane: ControlPlane;
  /** The real node (node `kubelet`). */
  kubeletNode?: KubeletNode;
  loadBalancer: LoadBalancerController;
  log: Logger;
  /** Runs kubectl against this cluster; rejects on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** Every process this cluster runs now (control plane and pods). */
  pids(): number[];
  /** Stops pods, load balancers and the control plane; leaves no process behind. */
  stop(): Promise<void>;
}

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const log = options.log ?? pino({ base: { component: 'local' } }, pino.destination({ dest: join(dir, 'local.log'), sync: true, append: true }));
  const nodeModule = options.node === 'none' ? undefined : await import('./node/node.ts');
  const prep = nodeModule?.prepareKubeletNode(dir, options.controlPlane?.serviceClusterIPRange);
  const controlPlane = await startControlPlane({
    ...options.controlPlane,
    extraApiServerArgs: [...(prep?.apiServerArgs ?? []), ...(options.controlPlane?.extraApiServerArgs ?? [])],
    dir: join(dir, 'controlplane'),
    log: options.controlPlaneLog ?? ((line) => log.info({ component: 'controlplane' }, line)),
  });
  const kubeconfigLink = join(dir, 'kubeconfig');
  rmSync(kubeconfigLink, { force: true });
  symlinkSync(controlPlane.kubeconfigPath, kubeconfigLink);

  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(controlPlane.kubeconfigPath);
  const kubeletNode = nodeModule ? new nodeModule.KubeletNode({
    dir, controlPlane, log, nodeName: options.nodeName, images: options.images,
    progress: options.controlPlaneLog ?? ((line) => log.info({ component: 'kubelet-node' }, line)),
  }) : undefined;
  const loadBalancer = new LoadBalancerController({ kubeConfig, log, range: options.lbRange ?? '127.31.0.0/16', dial: kubeletNode?.dial });
  try {
    await kubeletNode?.start();
    await loadBalancer.start();
  } catch (err) {
    await loadBalancer.stop().catch(() => undefined);
    await kubeletNode?.stop().catch((e) => log.warn({ err: (e as Error).message }, 'kubelet node stop failed'));
    await controlPlane.stop();
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    dir,
    kubeconfigPath: controlPlane.kubeconfigPath,
    kubeConfig,
    server: controlPlane.server,
    kubectlPath: controlPlane.binaries.kubectl,
    controlPlane,
    kubeletNode,
    loadBalancer,
    log,
    kubectl: (args, opts) => controlPlane.kubectl(args, opts),
    pids: () => [...Object.values(controlPlane.pids()), ...(kubeletNode?.pids ?? [])],
    stop() {
      stopping ??= (async () => {
        log.info('stopping the local cluster');
        await loadBalancer.stop().catch((err) => log.warn({ err: (err as Error).message }, 'load balancer stop failed'));
        await kubeletNode?.stop().catch((err) => log.warn({ err: (err as Error).message }, 'kubelet node stop failed'));
        await controlPlane.stop();
        log.info('local cluster stopped');
      })();
      return stopping;
    },
  };
}
