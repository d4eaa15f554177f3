// The harness's safety net: a child started with spawnTracked does not outlive a SIGTERM to
// the process that started it (mocha or a benchmark killed from outside).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const processes = fileURLToPath(new URL('../../support/processes.ts', import.meta.url));
const hooks = fileURLToPath(new URL('../../support/hooks.ts', import.meta.url));
/** Running, not a zombie waiting for init to reap it. */
const alive = (pid: number): boolean => {
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
};

describe('test support: spawnTracked children and signals', () => {
  it('a SIGTERM to the parent kills its tracked children and still ends the parent by SIGTERM', async function () {
    this.timeout(20_000);
    const script = `import { spawnTracked } from ${JSON.stringify(processes)};
      const c = spawnTracked('sleep', ['60']); c.once('spawn', () => console.log(c.pid)); setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await once(parent.stdout!, 'data') as [Buffer];
    const childPid = Number(line.toString().trim());
    assert.ok(childPid > 0 && alive(childPid), 'the child runs');
    parent.kill('SIGTERM');
    const [code, signal] = await once(parent, 'exit') as [number | null, string | null];
    assert.equal(signal, 'SIGTERM', `the parent ended by the signal (code ${code})`);
    for (let i = 0; i < 50 && alive(childPid); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(childPid), false, `child ${childPid} was killed with its parent`);
  });

  it('a SIGTERM runs the registered teardowns (an async one to its end) before the parent ends by SIGTERM; mocha\'s teardown then runs none again', async function () {
    this.timeout(20_000);
    const script = `import { atTeardown, mochaGlobalTeardown } from ${JSON.stringify(hooks)};
      await import(${JSON.stringify(processes)});
      atTeardown(async () => { await new Promise((r) => setTimeout(r, 300)); console.log('torn down'); await mochaGlobalTeardown(); console.log('again: nothing'); });
      console.log('ready'); setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    while (!out.includes('ready')) await once(parent.stdout!, 'data');
    parent.kill('SIGTERM');
    const [code, signal] = await once(parent, 'exit') as [number | null, string | null];
    assert.equal(signal, 'SIGTERM', `the parent ended by the signal (code ${code})`);
    assert.deepEqual(out.trim().split('\n'), ['ready', 'torn down', 'again: nothing']);
  });
});
