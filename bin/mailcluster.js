#!/usr/bin/env node
// Entry shim, plain JavaScript so that it runs on any Node. The project needs Node 24
// (type stripping, @kubernetes/client-node 2.x); where the Node that started us is older,
// re-run the same command on the Node 24 that `npm install` placed in node_modules.
// A supervisor holds the shim's PID: every signal it may send is passed to the real
// process, and the shim ends the way the real process ended (same code, same signal), so
// a `kill <pid>` never leaves an orphan bound to the node's ports.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = join(here, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error(`mailcluster needs Node 24 (this is ${process.version}); run \`npm install\` first, which brings Node 24 as a devDependency`);
    process.exit(1);
  }
  // the child also watches us: a shim killed with SIGKILL (nothing to forward) must not leave it running
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, MAILCLUSTER_SHIM_PID: String(process.pid) },
  });
  const forwarded = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  for (const sig of forwarded) process.on(sig, () => { try { child.kill(sig); } catch { /* already gone */ } });
  child.on('error', (err) => {
    console.error(`mailcluster: cannot start ${pinned}: ${err.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // end by the same signal (default action) so the supervisor sees what the node saw
      for (const sig of forwarded) process.removeAllListeners(sig);
      process.kill(process.pid, signal);
      setTimeout(() => process.exit(128 + 15), 1000).unref();
      return;
    }
    process.exit(code ?? 1);
  });
} else {
  if (process.argv[2] === 'node' || process.argv[2] === 'operator') {
    // the mail node's and the operator's runtime settings (V8 and glibc: node-image/src/process-env.ts)
    // must be in place before they start: re-execute this process once with them (same PID)
    const { nodeReexec, operatorReexec, usableMemory } = await import('../node-image/src/process-env.ts');
    const re = nodeReexec(process.execPath, process.execArgv, process.argv, process.env)
      ?? operatorReexec(process.execPath, process.execArgv, process.argv, process.env, usableMemory(totalmem(), process.constrainedMemory?.()));
    if (re && typeof process.execve === 'function') {
      try {
        process.execve(re.args[0], re.args, re.env);
      } catch (err) {
        console.error(`mailcluster: cannot re-execute with the node's runtime settings (${err.message}); running without them`);
      }
    }
  }
  const shim = Number(process.env.MAILCLUSTER_SHIM_PID);
  if (shim > 0) {
    // run by the shim above: when it is gone (a SIGKILL it could not pass on), stop as on SIGTERM
    delete process.env.MAILCLUSTER_SHIM_PID;
    const watch = setInterval(() => {
      if (process.ppid === shim) return;
      clearInterval(watch);
      process.kill(process.pid, 'SIGTERM');
    }, 1000).unref();
  }
  await import('./cli.ts');
}
