// `mailcluster local up --node agent|kubelet`: the switch between the process agent and the real node.
import assert from 'node:assert/strict';
import { parseLocalArgs } from '../../../local/src/cli.ts';

describe('local CLI: --node', () => {
  it('defaults to the process agent and takes kubelet in both spellings', () => {
    assert.equal(parseLocalArgs(['up']).node, 'agent');
    assert.equal(parseLocalArgs(['up', '--node', 'kubelet']).node, 'kubelet');
    assert.equal(parseLocalArgs(['up', '--node=kubelet']).node, 'kubelet');
  });
  it('refuses anything else with a clear error', () => {
    assert.throws(() => parseLocalArgs(['up', '--node', 'docker']), /--node is agent or kubelet, not "docker"/);
    assert.throws(() => parseLocalArgs(['up', '--node']), /--node needs a value/);
  });
});
