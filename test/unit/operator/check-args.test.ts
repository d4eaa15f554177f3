import assert from 'node:assert/strict';
import { parseCheckArgs } from '../../../operator/src/check.ts';

describe('mailcluster operator check: flags', () => {
  it('needs --service and defaults the path and timeout', () => {
    assert.deepEqual(parseCheckArgs(['--service', 'm-metrics']), { service: 'm-metrics', path: '/readyz', timeoutMs: 60_000 });
    assert.throws(() => parseCheckArgs([]), /--service is required/);
  });

  it('reads a namespace, a path without its slash and a duration', () => {
    assert.deepEqual(parseCheckArgs(['--service', 's', '--namespace', 'mail', '--path', 'healthz', '--timeout', '90s']),
      { service: 's', namespace: 'mail', path: '/healthz', timeoutMs: 90_000 });
    assert.equal(parseCheckArgs(['--service', 's', '--timeout', '2m']).timeoutMs, 120_000);
  });

  it('refuses unknown flags, missing values and bad durations by name', () => {
    assert.throws(() => parseCheckArgs(['--service', 's', '--port', '1']), /unknown flag "--port"/);
    assert.throws(() => parseCheckArgs(['--service']), /--service needs a value/);
    assert.throws(() => parseCheckArgs(['--service', 's', '--timeout', 'soon']), /--timeout "soon": expected a duration/);
  });
});
