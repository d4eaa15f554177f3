// nodeReexec (node-image/src/process-env.ts): the mail node process re-executes itself once
// with its V8 and glibc settings; never twice, never for another command, never when turned
// off, and never overriding what the operator set.
import assert from 'node:assert/strict';
import { nodeReexec, operatorReexec, operatorV8Flags, TUNED_MARK, usableMemory } from '../../../node-image/src/process-env.ts';

const argv = ['/usr/bin/node', '/app/bin/mailcluster.js', 'node', '--config-dir', '/etc/mailcluster'];

describe('node process settings (re-exec)', () => {
  it('re-executes the node command with the V8 flag before the script and the malloc setting, marked as done', () => {
    const re = nodeReexec('/usr/bin/node', [], argv, { PATH: '/bin' });
    assert.ok(re);
    assert.deepEqual(re.args, ['/usr/bin/node', '--max-semi-space-size=4', '/app/bin/mailcluster.js', 'node', '--config-dir', '/etc/mailcluster']);
    assert.equal(re.env.MALLOC_ARENA_MAX, '2');
    assert.equal(re.env.PATH, '/bin');
    assert.equal(re.env[TUNED_MARK], '1');
    assert.equal(nodeReexec(re.args[0], ['--max-semi-space-size=4'], argv, re.env), null, 'never a second time');
  });

  it('only for the node command, and not when turned off', () => {
    assert.equal(nodeReexec('/n', [], ['/n', '/app/bin/mailcluster.js', 'operator'], {}), null);
    assert.equal(nodeReexec('/n', [], argv, { MAILCLUSTER_NODE_TUNING: 'off' }), null);
  });

  it('keeps what the operator gave: its own semi-space size (flag or NODE_OPTIONS) and MALLOC_ARENA_MAX', () => {
    assert.equal(nodeReexec('/n', ['--max_semi_space_size=8'], argv, { MALLOC_ARENA_MAX: '4' }), null, 'both given: run as given');
    const a = nodeReexec('/n', ['--max_semi_space_size=8'], argv, {});
    assert.ok(a);
    assert.deepEqual(a.args.slice(0, 3), ['/n', '--max_semi_space_size=8', '/app/bin/mailcluster.js']);
    const m = nodeReexec('/n', [], argv, { MALLOC_ARENA_MAX: '4' });
    assert.ok(m);
    assert.equal(m.env.MALLOC_ARENA_MAX, '4');
    const b = nodeReexec('/n', [], argv, { NODE_OPTIONS: '--max-old-space-size=512 --max-semi-space-size=16' });
    assert.ok(b);
    assert.ok(!b.args.some((a) => a.startsWith('--max-semi-space-size=')));
  });

  it('the operator command gets its young-generation and old-space caps too, once, not for --help, not when turned off', () => {
    const op = ['/usr/bin/node', '/app/bin/mailcluster.js', 'operator', '--leader-elect'];
    const re = operatorReexec('/usr/bin/node', [], op, { PATH: '/bin' });
    assert.ok(re);
    assert.deepEqual(re.args, ['/usr/bin/node', '--max-semi-space-size=4', '--max-old-space-size=512', '/app/bin/mailcluster.js', 'operator', '--leader-elect']);
    assert.equal(re.env[TUNED_MARK], '1');
    assert.equal(operatorReexec(re.args[0], re.args.slice(1, 2), op, re.env), null, 'never a second time');
    assert.equal(operatorReexec('/n', [], [...op, '--help'], {}), null);
    assert.equal(operatorReexec('/n', [], op, { MAILCLUSTER_OPERATOR_TUNING: 'off' }), null);
    assert.equal(operatorReexec('/n', [], argv, {}), null, 'not the node command');
    const given = operatorReexec('/n', [], op, { NODE_OPTIONS: '--max-semi-space-size=16' });
    assert.ok(given && !given.args.some((a) => a.startsWith('--max-semi-space-size=')));
    assert.ok(given.args.includes('--max-old-space-size=512'));
  });

  it("the operator's old-space cap: kept as given, left out beside --max-heap-size, given only where V8's own limit is larger", () => {
    const op = ['/n', '/app/bin/mailcluster.js', 'operator'];
    const own = operatorReexec('/n', ['--max_old_space_size=2048'], op, {});
    assert.ok(own);
    assert.deepEqual(own.args, ['/n', '--max_old_space_size=2048', '--max-semi-space-size=4', '/app/bin/mailcluster.js', 'operator']);
    // V8 does not start with --max-heap-size, a semi-space size and an old-space size together.
    const heap = operatorReexec('/n', [], op, { NODE_OPTIONS: '--max-heap-size=300' });
    assert.ok(heap);
    assert.deepEqual(heap.args, ['/n', '--max-semi-space-size=4', '/app/bin/mailcluster.js', 'operator']);
    const GiB = 1024 ** 3;
    assert.deepEqual(operatorV8Flags(24 * GiB), ['--max-semi-space-size=4', '--max-old-space-size=512']);
    assert.deepEqual(operatorV8Flags(2 * GiB), ['--max-semi-space-size=4', '--max-old-space-size=512']);
    assert.deepEqual(operatorV8Flags(1 * GiB), ['--max-semi-space-size=4'], 'V8 gives 512 MB itself');
    assert.deepEqual(operatorV8Flags(512 * 1024 ** 2), ['--max-semi-space-size=4'], 'a 512Mi container: V8 gives 256 MB');
    const small = operatorReexec('/n', [], op, {}, 512 * 1024 ** 2);
    assert.ok(small && !small.args.some((a) => a.startsWith('--max-old-space-size')));
  });

  it('usable memory: the machine, or the cgroup limit when there is a lower one', () => {
    const GiB = 1024 ** 3;
    assert.equal(usableMemory(24 * GiB, 2 ** 64), 24 * GiB, 'no limit (about 2^64)');
    assert.equal(usableMemory(24 * GiB, 0), 24 * GiB, 'no limit (0)');
    assert.equal(usableMemory(24 * GiB, undefined), 24 * GiB, 'an older Node');
    assert.equal(usableMemory(24 * GiB, 512 * 1024 ** 2), 512 * 1024 ** 2);
  });

  it('does not re-execute a process started with every setting already (the images\' ENTRYPOINT and ENV)', () => {
    assert.equal(nodeReexec('/n', ['--max-semi-space-size=4'], argv, { MALLOC_ARENA_MAX: '2' }), null);
    assert.equal(operatorReexec('/n', ['--max-semi-space-size=4'], ['/n', '/app/bin/cli.ts', 'operator'], { MALLOC_ARENA_MAX: '2' }, 512 * 1024 ** 2), null, 'the image in the chart\'s 512Mi');
    assert.ok(operatorReexec('/n', ['--max-semi-space-size=4'], ['/n', '/app/bin/cli.ts', 'operator'], { MALLOC_ARENA_MAX: '2' }, 24 * 1024 ** 3), 'the old-space cap missing where V8\'s own is larger');
    assert.ok(nodeReexec('/n', ['--max-semi-space-size=4'], argv, {}), 'the malloc setting missing');
    assert.ok(nodeReexec('/n', [], argv, { MALLOC_ARENA_MAX: '2' }), 'the V8 flag missing');
  });
});
