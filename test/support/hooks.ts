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
