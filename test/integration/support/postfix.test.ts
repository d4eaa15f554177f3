// The private Postfix instance the relay benchmark compares against: it binds only its
// master.cf address, relays from mynetworks to its relayhost, refuses other clients.
import assert from 'node:assert/strict';
import { harnessAddress } from '../../support/addresses.ts';
import { startPostfix } from '../../support/postfix.ts';
import { isListening } from '../../support/processes.ts';
import { startSmtpSink } from '../../support/smtp-sink.ts';
import { swaks } from '../../support/swaks.ts';

describe('postfix harness: a private instance', function () {
  this.timeout(60000);

  before(function () { if (process.getuid?.() !== 0) this.skip(); });

  it('relays from mynetworks to the relayhost and refuses relaying for others', async () => {
    const sink = await startSmtpSink({ address: harnessAddress(16, 100) });
    const address = harnessAddress(16, 1);
    const postfix = await startPostfix({ address, port: 2525, relayTo: `${sink.address}:${sink.port}`, mynetworks: [`${harnessAddress(16, 7)}/32`] });
    try {
      const ok = await swaks({ server: `${address}:2525`, to: 'someone@elsewhere.test', localAddress: harnessAddress(16, 7) });
      assert.equal(ok.lastCode, 250, ok.transcript);
      await sink.waitForCount(1, 20000);
      await postfix.waitForEmptyQueue(20000);

      const denied = await swaks({ server: `${address}:2525`, to: 'someone@elsewhere.test', localAddress: harnessAddress(16, 8) });
      assert.equal(denied.lastCode, 554, denied.transcript);
      assert.match(denied.lastReply!.text, /Relay access denied/);
    } finally {
      await postfix.stop();
      await sink.stop();
    }
    assert.equal(isListening(address, 2525), false);
  });
});
