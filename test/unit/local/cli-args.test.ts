// `mailcluster local up --node agent|kubelet`: the switch between the process agent and the real node.
import assert from 'node:assert/strict';
import { defaultNodeKind, parseLocalArgs } from '../../../local/src/cli.ts';

describe('local CLI: --node', () => {
  it('takes either kind in both spellings; without the flag `up` decides', () => {
    assert.equal(parseLocalArgs(['up']).node, undefined);
    assert.equal(parseLocalArgs(['up', '--node', 'kubelet']).node, 'kubelet');
    assert.equal(parseLocalArgs(['up', '--node=kubelet']).node, 'kubelet');
    assert.equal(parseLocalArgs(['up', '--node', 'agent']).node, 'agent');
  });
  it('runs the real kubelet by default as root, the process agent otherwise', () => {
    assert.equal(defaultNodeKind(true), 'kubelet');
    assert.equal(defaultNodeKind(false), 'agent');
  });
  it('refuses anything else with a clear error', () => {
    assert.throws(() => parseLocalArgs(['up', '--node', 'docker']), /--node is agent or kubelet, not "docker"/);
    assert.throws(() => parseLocalArgs(['up', '--node']), /--node needs a value/);
  });
});
