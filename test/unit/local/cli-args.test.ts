// `mailcluster local` arguments: one node implementation (the real kubelet), so no --node;
// the removed process agent's --pod-range is refused with a clear error.
import assert from 'node:assert/strict';
import { parseLocalArgs } from '../../../local/src/cli.ts';

describe('local CLI: arguments', () => {
  it('takes the state dir, the load balancer range and etcd\'s fsync switch in both spellings', () => {
    const f = parseLocalArgs(['up', '--dir', '/tmp/x', '--lb-range=127.60.0.0/16', '--etcd-no-fsync']);
    assert.deepEqual([f.command, f.dir, f.lbRange, f.etcdNoFsync], ['up', '/tmp/x', '127.60.0.0/16', true]);
    assert.equal(parseLocalArgs(['status']).lbRange, '127.31.0.0/16');
  });
  it('refuses what is gone with the process agent, and a flag without its value', () => {
    assert.throws(() => parseLocalArgs(['up', '--node', 'agent']), /unknown argument "--node"/);
    assert.throws(() => parseLocalArgs(['up', '--pod-range', '127.30.0.0/16']), /unknown argument "--pod-range"/);
    assert.throws(() => parseLocalArgs(['up', '--dir']), /--dir needs a value/);
  });
});
