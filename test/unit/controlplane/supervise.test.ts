// superviseComponent with real processes: a program killed with -9 is started again (a new
// pid, the delay doubling), stop() ends it for good, and a refused restart leaves it stopped.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive, superviseComponent, type ComponentExit } from '../../../local/src/controlplane/supervise.ts';

const until = async (what: string, check: () => boolean, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('superviseComponent (real processes)', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'supervise-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('starts a program killed with -9 again after a delay that doubles, and stop() ends it for good', async () => {
    const restarts: Array<{ exit: ComponentExit; restart: number; delayMs: number }> = [];
    const c = superviseComponent({ name: 'sleeper', command: 'sleep', args: ['30'], logFile: join(dir, 'sleeper.log') }, {
      initialDelayMs: 50, maxDelayMs: 150, onRestart: (exit, restart, delayMs) => restarts.push({ exit, restart, delayMs }),
    });
    try {
      const pids = [c.pid];
      for (let i = 1; i <= 3; i++) {
        process.kill(c.pid, 'SIGKILL');
        await until(`restart ${i}`, () => c.restarts === i && c.running());
        assert.notEqual(c.pid, pids.at(-1));
        pids.push(c.pid);
      }
      assert.deepEqual(restarts.map((r) => [r.restart, r.delayMs, r.exit.signal]), [[1, 50, 'SIGKILL'], [2, 100, 'SIGKILL'], [3, 150, 'SIGKILL']]);
      assert.ok(pids.slice(0, -1).every((p) => !processAlive(p)), 'the earlier runs are gone');
      const last = c.pid;
      await c.stop(2000);
      assert.equal(processAlive(last), false);
      const exit = await c.exited;
      assert.equal(exit.signal, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(c.restarts, 3, 'no restart after stop()');
      assert.equal(c.running(), false);
      assert.equal(readFileSync(join(dir, 'sleeper.log'), 'utf8').match(/starting sleeper/g)?.length, 4, 'each run is announced in the one log');
    } finally {
      await c.stop(1000);
    }
  });

  it('leaves the program stopped when shouldRestart says no, and settles exited with its exit', async () => {
    let allow = false;
    const c = superviseComponent({ name: 'once', command: 'sh', args: ['-c', 'exit 3'], logFile: join(dir, 'once.log') }, { initialDelayMs: 10, shouldRestart: () => allow });
    const exit = await c.exited;
    assert.equal(exit.code, 3);
    assert.equal(c.restarts, 0);
    allow = true;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c.restarts, 0);
  });

  it('stop() while a restart is pending cancels it', async () => {
    const c = superviseComponent({ name: 'flaky', command: 'sh', args: ['-c', 'exit 1'], logFile: join(dir, 'flaky.log') }, { initialDelayMs: 200 });
    await until('the first exit', () => !c.running());
    await c.stop(1000);
    assert.equal((await c.exited).code, 1);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(c.restarts, 0);
  });
});
