import assert from 'node:assert/strict';
import { clusterEtrnReply, localEtrnReply, mailqEtrnReplyLine, renderSmtpReply } from '../../../node-image/src/etrn/reply.ts';

const target = { domain: 'customer.example', subdomains: false };

describe('ETRN reply shaping', () => {
  it('answers a lone node with the RFC 1985 codes', () => {
    assert.equal(renderSmtpReply(localEtrnReply(target, { started: 3 })), '253 2.0.0 OK, 3 pending messages for node customer.example started');
    assert.equal(renderSmtpReply(localEtrnReply(target, { started: 0, inFlight: 2 })), '252 2.0.0 OK, pending messages for node customer.example started');
    assert.equal(renderSmtpReply(localEtrnReply(target, { started: 0 })), '251 2.0.0 OK, no messages waiting for node customer.example');
    assert.equal(localEtrnReply({ domain: 'customer.example', subdomains: true }, { started: 0 }).lines[0], '2.0.0 OK, no messages waiting for node @customer.example');
  });

  it("answers a cluster ETRN in ZMailer's shape, in configuration order", () => {
    const reply = clusterEtrnReply([
      { node: '10.0.0.1/1174', line: '+OK; an ETRN started something.' },
      { node: '10.0.0.2/1174', line: 'Unable to connect() to scheduler (ECONNREFUSED)' },
    ]);
    assert.equal(
      renderSmtpReply(reply),
      [
        '250-2.0.0 Attempting ETRN on cluster node: 10.0.0.1/1174',
        '250-2.0.0 +OK; an ETRN started something.',
        '250-2.0.0 Attempting ETRN on cluster node: 10.0.0.2/1174',
        '250-2.0.0 Unable to connect() to scheduler (ECONNREFUSED)',
        '250 2.0.0 ETRN-cluster operation(s) complete',
      ].join('\r\n'),
    );
  });

  it('keeps a hostile peer line on one line', () => {
    const reply = clusterEtrnReply([{ node: 'p/1174', line: '+OK\r\n250 fake' }]);
    assert.equal(reply.lines[1], '2.0.0 +OK  250 fake');
  });

  it("words the MAILQv2 ETRN replies as ZMailer's scheduler does", () => {
    assert.equal(mailqEtrnReplyLine(true), '+OK; an ETRN started something.');
    assert.equal(mailqEtrnReplyLine(false), "+OK; an ETRN didn't start anything.");
  });
});
