// Mocha root hooks: everything a whole run shares is torn down here, once.
// Suites register their shared resources (one control plane per run, for example)
// with `atTeardown`, so that a run leaves no process behind.
const teardowns: Array<() => Promise<void> | void> = [];

export function atTeardown(fn: () => Promise<void> | void): void {
  teardowns.push(fn);
}

/** Runs what was registered, newest first, each once (a signal's teardown and then mocha's must not run one twice). */
export async function runTeardowns(): Promise<void> {
  for (const fn of teardowns.splice(0).reverse()) {
    try { await fn(); } catch (err) { console.error('teardown failed:', err); }
  }
}

export const mochaGlobalTeardown = runTeardowns;

// What a failed test's suite wants printed about the state it ran against (the shared local
// cluster registers its diagnostics): printed after the failure, so CI's output says why.
const failureReporters = new Set<() => Promise<string | undefined>>();

/** Registers a report to print after each failed test; returns its removal. */
export function onTestFailure(report: () => Promise<string | undefined>): () => void {
  failureReporters.add(report);
  return () => { failureReporters.delete(report); };
}

export const mochaHooks = {
  async afterEach(this: Mocha.Context): Promise<void> {
    if (this.currentTest?.state !== 'failed' || failureReporters.size === 0) return;
    this.timeout(120_000);
    for (const report of failureReporters) {
      const text = await report().catch((err: Error) => `(diagnostics failed: ${err.message})`);
      if (text) console.error(`      diagnostics after "${this.currentTest.title}":\n${text.split('\n').map((l) => `        ${l}`).join('\n')}`);
    }
  },
};
