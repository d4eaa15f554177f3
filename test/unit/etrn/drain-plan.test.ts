import assert from 'node:assert/strict';
import { handoffTargets, nextTarget, targetKey } from '../../../node-image/src/drain/plan.ts';

const peer = (host: string, port = 1174) => ({ host, port, user: 'etrn', password: 'x' });
const self = { addresses: ['10.0.0.1'], names: ['mx.example'], mailqPort: 1174 };

describe('drain hand-off planning', () => {
  it('hands off to every etrn-cluster peer but this node, once per host, at the SMTP port', () => {
    const targets = handoffTargets([peer('10.0.0.1'), peer('10.0.0.2'), peer('10.0.0.3'), peer('[10.0.0.2]')], self, 2525);
    assert.deepEqual(targets, [{ host: '10.0.0.2', port: 2525 }, { host: '10.0.0.3', port: 2525 }]);
    assert.deepEqual(handoffTargets([peer('10.0.0.1')], self, 2525), [], 'alone: nobody to hand to');
  });

  it('rotates over the targets and skips those resting after a failure', () => {
    const targets = [{ host: 'a', port: 25 }, { host: 'b', port: 25 }, { host: 'c', port: 25 }];
    const resting = new Map<string, number>();
    assert.equal(nextTarget(targets, resting, -1, 0), 0);
    assert.equal(nextTarget(targets, resting, 0, 0), 1);
    assert.equal(nextTarget(targets, resting, 2, 0), 0);
    resting.set(targetKey(targets[1]), 1000);
    assert.equal(nextTarget(targets, resting, 0, 500), 2, 'b rests until 1000');
    assert.equal(nextTarget(targets, resting, 0, 1000), 1, 'b is back');
    resting.set(targetKey(targets[0]), 1000).set(targetKey(targets[2]), 1000);
    assert.equal(nextTarget(targets, resting, 0, 999), undefined, 'everyone rests');
  });
});
