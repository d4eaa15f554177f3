// bin/mailcluster.js started by an older Node (the machine's /usr/bin/node, v20) re-runs
// itself on Node 24. A supervisor holds the shim's PID: SIGTERM to it must end the real
// node too (no orphan still bound to the SMTP port), and the shim must end the way the
// node ended. Addresses: 127.10.94.0/24.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startMailNode, repoRoot } from '../../support/mail-node.ts';
import { exited, isListening, spawnTracked, stopChild, waitUntil } from '../../support/processes.ts';
import { nodeTestAddress } from './helpers.ts';

const systemNode = '/usr/bin/node';

function childrenOf(pid: number): number[] {
  const path = `/proc/${pid}/task/${pid}/children`;
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch { return false; }
  // a zombie is gone for our purpose
  try { return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; }
}

describe('bin/mailcluster.js on an older Node', function () {
  this.timeout(60_000);
  const major = existsSync(systemNode) ? Number(execFileSync(systemNode, ['-p', 'process.versions.node.split(".")[0]']).toString().trim()) : 0;

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the shim PID stops the real node, closes its port, and the shim ends like the node`, async function () {
      if (!major || major >= 24) this.skip(); // the re-run path only exists on an older Node
      const address = nodeTestAddress(94, signal === 'SIGTERM' ? 1 : 2);
      const node = await startMailNode({ hostname: 'shim.test', address, relayDomains: ['a.test'] }, { start: false });
      const shim = spawnTracked(systemNode, [join(repoRoot, 'bin', 'mailcluster.js'), 'node', '--config-dir', node.configDir], {
        cwd: repoRoot,
        // PATH without node_modules/.bin: the system Node is what runs the shim
        env: { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let real: number[] = [];
      try {
        // ready (its signal handlers are in place from then on)
        await waitUntil('the node ready', async () => (await fetch(`http://${address}:${node.config.adminPort}/readyz`)).status === 200, { timeoutMs: 30_000 });
        assert.ok(isListening(address, node.config.smtpPort));
        real = childrenOf(shim.pid!);
        assert.equal(real.length, 1, 'the shim runs exactly one child: the Node 24 process');
        assert.match(readFileSync(`/proc/${real[0]}/cmdline`, 'utf8'), /node_modules\/node\/bin\/node/);
        const done = exited(shim);
        shim.kill(signal);
        await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('shim did not exit')), 20_000))]);
        await waitUntil('the real node gone', () => !alive(real[0]), { timeoutMs: 5000 });
        assert.equal(isListening(address, node.config.smtpPort), false, 'nothing listens on the SMTP port any more');
        // the node stops cleanly on the signal (exit 0), and the shim passes that on
        assert.equal(shim.exitCode, 0, `shim exit code ${shim.exitCode} signal ${shim.signalCode}`);
      } finally {
        await stopChild(shim, 'SIGKILL', 1000);
        // an orphan (the bug this catches) is killed here by its PID
        for (const pid of real) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
        await node.close();
      }
    });
  }

  it('SIGKILL to the shim (nothing to pass on): the real node notices and stops, closing its port', async function () {
    if (!major || major >= 24) this.skip();
    const address = nodeTestAddress(94, 4);
    const node = await startMailNode({ hostname: 'shim.test', address, relayDomains: ['a.test'] }, { start: false });
    const shim = spawnTracked(systemNode, [join(repoRoot, 'bin', 'mailcluster.js'), 'node', '--config-dir', node.configDir], {
      cwd: repoRoot, env: { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let real: number[] = [];
    try {
      await waitUntil('the node ready', async () => (await fetch(`http://${address}:${node.config.adminPort}/readyz`)).status === 200, { timeoutMs: 30_000 });
      real = childrenOf(shim.pid!);
      assert.equal(real.length, 1);
      await stopChild(shim, 'SIGKILL', 1000);
      await waitUntil('the orphaned node gone', () => !alive(real[0]), { timeoutMs: 10_000 });
      assert.equal(isListening(address, node.config.smtpPort), false);
    } finally {
      for (const pid of real) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      await node.close();
    }
  });

  it('the shim passes the node\'s own exit code on (a bad config exits 1)', async function () {
    if (!major || major >= 24) this.skip();
    const node = await startMailNode({ hostname: 'shim.test', address: nodeTestAddress(94, 3), extraSmtpserverLines: ['PARAM no-such-param 1'] }, { start: false });
    try {
      const shim = spawnTracked(systemNode, [join(repoRoot, 'bin', 'mailcluster.js'), 'node', '--config-dir', node.configDir], {
        cwd: repoRoot, env: { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' },
      });
      await exited(shim);
      assert.equal(shim.exitCode, 1);
    } finally {
      await node.close();
    }
  });
});
