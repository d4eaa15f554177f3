// Mocha root hooks: everything a whole run shares is torn down here, once.
// Suites register their shared resources (one control plane per run, for example)
// with `atTeardown`, so that a run leaves no process behind.
const teardowns: Array<() => Promise<void> | void> = [];

export function atTeardown(fn: () => Promise<void> | void): void {
  teardowns.push(fn);
}

export async function mochaGlobalTeardown(): Promise<void> {
  for (const fn of teardowns.reverse()) {
    try { await fn(); } catch (err) { console.error('teardown failed:', err); }
  }
}
