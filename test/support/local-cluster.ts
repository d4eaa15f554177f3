// One local Kubernetes per mocha run, started lazily by the first suite that asks for it and
// stopped once at the end of the run (or earlier by a suite that needs the machine's one
// kubelet node to itself: test/e2e/kubelet).
//
// As root (CI, `npm test`): the real node -- kubelet + containerd + runc in a network namespace
// (local/src/node) -- running the project's images, built (or found in their cache) first.
// LoadBalancers are on 127.51.0.0/16 on the host; pods are 10.244.1.x inside the namespace,
// reachable from the host only through the node's gateway (node.dial, httpInside); a suite's
// own peers go inside (node.netnsCommand on a peerAddress) or stay on the host loopback and
// are exposed inside (node.exposeHost).
// Not root, or MAILCLUSTER_KUBELET_E2E=0: the control plane alone (suites that need no pods
// still run; the others are skipped, see kubeletSuitesWanted).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../../local/src/index.ts';
import { ensureImages } from '../../local/src/images/build.ts';
import { ensureDebianPackages, imageTools, kubeletNodeTools } from '../../scripts/prerequisites.ts';
import { ranges } from './addresses.ts';
import { clusterDiagnostics } from './cluster-diagnostics.ts';
import { atTeardown, onTestFailure } from './hooks.ts';

/** Suites whose pods run need root: `npm test` as root runs them (MAILCLUSTER_KUBELET_E2E=0 skips them, as it skips test/e2e/kubelet). */
export function kubeletSuitesWanted(): boolean {
  return process.getuid?.() === 0 && process.env.MAILCLUSTER_KUBELET_E2E !== '0';
}

/**
 * A local cluster for tests: with `node: 'kubelet'`, the Debian tools the node needs and the
 * project's images (built or found in their cache) first. etcd skips fsync (a test's data).
 */
export async function startTestLocalCluster(o: { dir: string; node: 'kubelet' | 'none'; lbRange: string; controlPlaneLog?: (line: string) => void }): Promise<LocalCluster> {
  let images: string[] = [];
  if (o.node === 'kubelet') {
    ensureDebianPackages((line) => console.error(`      ${line}`), [...imageTools, ...kubeletNodeTools]);
    images = (await ensureImages()).map((i) => i.archive);
  }
  return startLocalCluster({
    dir: o.dir, node: o.node, images, lbRange: o.lbRange,
    controlPlane: { etcdUnsafeNoFsync: true },
    ...(o.controlPlaneLog ? { controlPlaneLog: o.controlPlaneLog } : {}),
  });
}

let shared: Promise<LocalCluster> | undefined;
let stopShared: (() => Promise<void>) | undefined;

export function sharedLocalCluster(): Promise<LocalCluster> {
  if (!shared) {
    const keep = process.env.MAILCLUSTER_TEST_CLUSTER_DIR;
    const dir = keep || mkdtempSync(join(tmpdir(), 'mailcluster-e2e-'));
    const withNode = kubeletSuitesWanted();
    shared = (async () => {
      const started = Date.now();
      const cluster = await startTestLocalCluster({ dir, node: withNode ? 'kubelet' : 'none', lbRange: ranges.testClusterLoadBalancers });
      console.log(`      shared local cluster (${withNode ? 'a kubelet node' : 'no node'}) up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return cluster;
    })();
    const started = shared;
    // A test that fails while this cluster runs prints the node's and the pods' state.
    const noMoreReports = onTestFailure(async () => {
      const cluster = await started.catch(() => undefined);
      return cluster?.kubeletNode ? clusterDiagnostics(cluster) : undefined;
    });
    let stopping: Promise<void> | undefined;
    stopShared = () => {
      stopping ??= (async () => {
        noMoreReports();
        const cluster = await started.catch(() => undefined);
        await cluster?.stop();
        if (!keep) rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    };
    atTeardown(stopShared);
  }
  return shared;
}

/** Stops the shared cluster now if one runs (the machine holds one kubelet node at a time); a later ask starts a new one. */
export async function stopSharedLocalCluster(): Promise<void> {
  const stop = stopShared;
  shared = undefined;
  stopShared = undefined;
  await stop?.();
}

/**
 * Addresses inside the node's namespace, below the pods' range, for a suite's own peers:
 * suite `block` (1-15) gets 10.244.0.<16 * block + i>, i in 0..15 (test/e2e/kubelet keeps
 * 10.244.0.2-4). Blocks in use: 1 ops, 2 operator, 3 chaos, 4 client-address.
 */
export function peerAddress(block: number, i: number): string {
  if (!Number.isInteger(block) || block < 1 || block > 15 || !Number.isInteger(i) || i < 0 || i > 15) throw new Error(`no peer address ${block}/${i}`);
  return `10.244.0.${16 * block + i}`;
}
