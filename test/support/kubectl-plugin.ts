// `kubectl mailcluster ...` as a user runs it: kubectl-mailcluster on the PATH, a link to the
// shim (what `npm install -g` makes), found by the real kubectl's plugin discovery. The shim
// re-runs itself on Node 24 from node_modules when the PATH's node is older.
import { execFile } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './mail-node.ts';

export interface PluginResult { code: number; stdout: string; stderr: string }

/** Puts kubectl-mailcluster into `binDir` and returns a runner of `kubectl mailcluster ARGS`. */
export function kubectlPlugin(o: { binDir: string; kubectlPath: string; kubeconfigPath: string }): (...args: string[]) => Promise<PluginResult> {
  symlinkSync(join(repoRoot, 'bin', 'kubectl-mailcluster.js'), join(o.binDir, 'kubectl-mailcluster'));
  return (...args) => new Promise((resolve) => {
    execFile(o.kubectlPath, ['mailcluster', ...args], {
      env: { ...process.env, PATH: `${o.binDir}:${process.env.PATH}`, KUBECONFIG: o.kubeconfigPath },
      timeout: 60_000,
    }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}
