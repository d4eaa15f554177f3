import assert from 'node:assert/strict';
import { isSelfPeer, normalizeAddress, peerName } from '../../../node-image/src/etrn/peers.ts';

const self = { addresses: ['10.1.2.3', '::ffff:10.1.2.4'], names: ['node-0.mail.example'], mailqPort: 1174 };

describe('etrn-cluster peer is self', () => {
  it('finds this node by address, bracketed literal, mapped address or name, on our MAILQv2 port', () => {
    assert.equal(isSelfPeer({ host: '10.1.2.3', port: 1174 }, self), true);
    assert.equal(isSelfPeer({ host: '[10.1.2.3]', port: 1174 }, self), true);
    assert.equal(isSelfPeer({ host: '10.1.2.4', port: 1174 }, self), true);
    assert.equal(isSelfPeer({ host: 'NODE-0.mail.example.', port: 1174 }, self), true);
  });

  it('does not take another address or another port for us', () => {
    assert.equal(isSelfPeer({ host: '10.1.2.5', port: 1174 }, self), false);
    assert.equal(isSelfPeer({ host: '10.1.2.3', port: 174 }, self), false);
  });

  it('normalises literals and names peers as in the config', () => {
    assert.equal(normalizeAddress('[IPv6:2001:DB8::1]'), '2001:db8::1');
    assert.equal(peerName({ host: '10.1.2.3', port: 1174 }), '10.1.2.3/1174');
  });
});
