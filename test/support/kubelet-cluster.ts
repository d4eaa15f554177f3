// One local Kubernetes with a real node (kubelet + containerd + runc in a network namespace,
// local/src/node) per mocha run, for the suites that run their pods there: started lazily by
// the first suite that asks, stopped once at the end of the run (or earlier by a suite that
// needs the machine's one kubelet node to itself: test/e2e/kubelet). The project's images are
// built (or found in their cache) and imported first.
//
// Its LoadBalancers are on 127.51.0.0/16 on the host; pods are 10.244.1.x inside the
// namespace, reachable from the host only through the node's gateway (node.dial, httpInside);
// a suite's own peers go inside (node.netnsCommand on an address from peerAddress) or stay on
// the host loopback and are exposed inside (node.exposeHost).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../../local/src/index.ts';
import type { KubeletNode } from '../../local/src/node/node.ts';
import { ensureImages } from '../../local/src/images/build.ts';
import { ensureDebianPackages, imageTools, kubeletNodeTools } from '../../scripts/prerequisites.ts';
import { atTeardown } from './hooks.ts';

export const KUBELET_CLUSTER_LB_RANGE = '127.51.0.0/16';

/**
 * Suites on the kubelet need root; `npm test` as root runs them (MAILCLUSTER_KUBELET_E2E=0
 * skips them, as it skips test/e2e/kubelet).
 */
export function kubeletSuitesWanted(): boolean {
  return process.getuid?.() === 0 && process.env.MAILCLUSTER_KUBELET_E2E !== '0';
}

export interface KubeletTestCluster {
  cluster: LocalCluster;
  node: KubeletNode;
}

let shared: Promise<KubeletTestCluster> | undefined;
let stopShared: (() => Promise<void>) | undefined;

export function sharedKubeletCluster(): Promise<KubeletTestCluster> {
  if (!shared) {
    const dir = mkdtempSync(join(tmpdir(), 'mailcluster-kubelet-'));
    shared = (async () => {
      ensureDebianPackages((line) => console.error(`      ${line}`), [...imageTools, ...kubeletNodeTools]);
      const images = await ensureImages();
      const started = Date.now();
      const cluster = await startLocalCluster({
        dir, node: 'kubelet', images: images.map((i) => i.archive), lbRange: KUBELET_CLUSTER_LB_RANGE,
        controlPlane: { etcdUnsafeNoFsync: true },
      });
      console.log(`      shared cluster with a kubelet node up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return { cluster, node: cluster.kubeletNode! };
    })();
    const started = shared;
    let stopping: Promise<void> | undefined;
    stopShared = () => {
      stopping ??= (async () => {
        const c = await started.catch(() => undefined);
        await c?.cluster.stop();
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    };
    atTeardown(stopShared);
  }
  return shared;
}

/** Stops the shared kubelet cluster now if one runs (the machine holds one kubelet node at a time); a later ask starts a new one. */
export async function stopSharedKubeletCluster(): Promise<void> {
  const stop = stopShared;
  shared = undefined;
  stopShared = undefined;
  await stop?.();
}

/**
 * Addresses inside the namespace, below the pods' range, for a suite's own peers: suite
 * `block` (1-15) gets 10.244.0.<16 * block + i>, i in 0..15. test/e2e/kubelet keeps
 * 10.244.0.2-4.
 */
export function peerAddress(block: number, i: number): string {
  if (!Number.isInteger(block) || block < 1 || block > 15 || !Number.isInteger(i) || i < 0 || i > 15) throw new Error(`no peer address ${block}/${i}`);
  return `10.244.0.${16 * block + i}`;
}
