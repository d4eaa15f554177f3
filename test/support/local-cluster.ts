// One local Kubernetes (control plane + node agent + load balancer) per mocha run, started
// lazily by the first suite that asks for it and stopped once at the end of the run.
// Pods get addresses in 127.40.0.0/16, LoadBalancer Services in 127.41.0.0/16 (DECISIONS.md).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../../local/src/index.ts';
import { atTeardown } from './hooks.ts';

let shared: Promise<LocalCluster> | undefined;

export function sharedLocalCluster(): Promise<LocalCluster> {
  if (!shared) {
    const keep = process.env.MAILCLUSTER_TEST_CLUSTER_DIR;
    const dir = keep || mkdtempSync(join(tmpdir(), 'mailcluster-e2e-'));
    shared = startLocalCluster({
      dir,
      podRange: '127.40.0.0/16',
      lbRange: '127.41.0.0/16',
      controlPlane: { etcdUnsafeNoFsync: true },
      restartBackoff: { initialMs: 500, maxMs: 5000, resetAfterMs: 30_000 },
    });
    const started = shared;
    atTeardown(async () => {
      const cluster = await started.catch(() => undefined);
      await cluster?.stop();
      if (!keep) rmSync(dir, { recursive: true, force: true });
    });
  }
  return shared;
}
