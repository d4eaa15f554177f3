import assert from 'node:assert/strict';
import { buildPodStatus, podPhase, type PodRuntime } from '../../../local/src/agent/pod-status.ts';
import { nextRestartDelay } from '../../../local/src/agent/backoff.ts';
import { containerArgv, imageRepository } from '../../../local/src/agent/images.ts';

function runtime(): PodRuntime {
  return {
    podIP: '127.40.0.5', hostIP: '127.0.0.1', startTime: new Date('2026-01-01T00:00:00Z'), initialized: true, transitions: new Map(),
    containers: [{ name: 'c', image: 'mailcluster/echo', restartCount: 0, state: { kind: 'waiting', reason: 'ContainerCreating' }, ready: false, started: false, final: false }],
  };
}

describe('local pod status', () => {
  it('reports phase, conditions, IPs and container states, with stable transition times', () => {
    const rt = runtime();
    const t0 = new Date('2026-01-01T00:00:01Z');
    const pending = buildPodStatus({}, rt, t0) as any;
    assert.equal(pending.phase, 'Pending');
    assert.equal(pending.podIP, '127.40.0.5');
    assert.deepEqual(pending.podIPs, [{ ip: '127.40.0.5' }]);
    assert.equal(pending.containerStatuses[0].state.waiting.reason, 'ContainerCreating');
    const ready = (s: any) => s.conditions.find((c: any) => c.type === 'Ready');
    assert.equal(ready(pending).status, 'False');

    rt.containers[0].state = { kind: 'running', startedAt: t0 };
    rt.containers[0].ready = true;
    rt.containers[0].started = true;
    const t1 = new Date('2026-01-01T00:00:05Z');
    const running = buildPodStatus({}, rt, t1) as any;
    assert.equal(running.phase, 'Running');
    assert.equal(ready(running).status, 'True');
    assert.equal(ready(running).lastTransitionTime, '2026-01-01T00:00:05Z');
    const again = buildPodStatus({}, rt, new Date('2026-01-01T00:09:00Z')) as any;
    assert.deepEqual(again, running, 'no change: identical status (so no update is sent)');
  });

  it('derives Succeeded and Failed from final container states', () => {
    const rt = runtime();
    const at = new Date();
    rt.containers[0] = { ...rt.containers[0], final: true, state: { kind: 'terminated', exitCode: 0, reason: 'Completed', startedAt: at, finishedAt: at } };
    assert.equal(podPhase(rt), 'Succeeded');
    rt.containers[0].state = { kind: 'terminated', exitCode: 2, reason: 'Error', startedAt: at, finishedAt: at };
    assert.equal(podPhase(rt), 'Failed');
  });

  it('backs off restarts: immediate, then doubling, reset after a long run', () => {
    const p = { initialMs: 1000, maxMs: 4000, resetAfterMs: 60_000 };
    assert.equal(nextRestartDelay(p, undefined, 10), 0);
    assert.equal(nextRestartDelay(p, 0, 10), 1000);
    assert.equal(nextRestartDelay(p, 1000, 10), 2000);
    assert.equal(nextRestartDelay(p, 4000, 10), 4000);
    assert.equal(nextRestartDelay(p, 4000, 60_000), 0);
  });

  it('maps images to local commands by repository, appending args', () => {
    assert.equal(imageRepository('mailcluster/node:0.1.0'), 'mailcluster/node');
    assert.equal(imageRepository('docker.io/mailcluster/echo@sha256:abc'), 'mailcluster/echo');
    const argv = containerArgv('mailcluster/node:0.1.0', undefined, ['--config-dir', '/etc/mailcluster']);
    assert.match(argv[1], /bin\/mailcluster\.js$/);
    assert.deepEqual(argv.slice(2), ['node', '--config-dir', '/etc/mailcluster']);
    assert.deepEqual(containerArgv('mailcluster/host', ['sh', '-c'], ['exit 3']), ['sh', '-c', 'exit 3']);
    assert.throws(() => containerArgv('nginx:1.27', undefined, undefined), /has no local command/);
  });
});
