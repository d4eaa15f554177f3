// The in-process API that ETRN, MAILQv2 and drain build on: flush by domain, list,
// readContent, markRecipientsDone, pause/resume, setAccepting (421) and the draining
// flag (/readyz 503), admin routes. Real node in this process, real SMTP peers.
// Addresses: 127.10.5.0/24.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { freePort } from '../../support/addresses.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { swaks } from '../../support/swaks.ts';
import { makeTempDir, removeTempDir, waitUntil, sleep } from '../../support/processes.ts';
import type { CaptureServer } from '../../support/capture-server.ts';
import { MailNode } from '../../../node-image/src/node.ts';
import { sendJson } from '../../../node-image/src/admin/server.ts';
import { commonPort, nodeTestAddress, startCaptures } from './helpers.ts';

const A = (h: number) => nodeTestAddress(5, h);
const client = A(50);

describe('mail node: queue API for ETRN and drain', function () {
  this.timeout(60000);
  let dir: string;
  let dns: DnsServer;
  let node: MailNode;
  let mx: CaptureServer;
  let smtp: string;
  let admin: string;

  before(async () => {
    dir = makeTempDir('queue-api');
    const port = await commonPort([A(20)]);
    dns = await startDns({ address: A(53), mx: [
      { domain: 'cust.test', host: 'mx.cust.test', preference: 10 },
      { domain: 'sub.cust.test', host: 'mx.cust.test', preference: 10 },
      { domain: 'other.test', host: 'mx.cust.test', preference: 10 },
    ], a: [{ name: 'mx.cust.test', ip: A(20) }] });
    [mx] = await startCaptures([A(20)], port);
    await mx.stop();
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'smtpserver.conf'), [
      'PARAM hostname node5.cluster.test', `PARAM BindSmtp ${A(1)} ${await freePort(A(1))}`, `PARAM BindAdmin ${A(1)} ${await freePort(A(1))}`,
      'PARAM relay-domain cust.test', 'PARAM relay-domain sub.cust.test', 'PARAM relay-domain other.test',
      `PARAM dns-server ${dns.server}`, `PARAM smtp-port ${port}`, 'PARAM retry-interval 3600', '',
    ].join('\n'));
    writeFileSync(join(dir, 'config', 'zmailer.conf'), `SELFADDRESSES=${A(1)}\nPOSTOFFICE=${join(dir, 'spool')}\n`);
    node = await MailNode.start(join(dir, 'config'), { log: pino({ level: 'silent' }), env: {} });
    smtp = `${A(1)}:${node.smtp.address!.port}`;
    admin = `http://${A(1)}:${node.admin.address!.port}`;
  });

  after(async () => {
    await node?.stop(1000);
    await mx?.stop();
    await dns?.stop();
    if (dir) removeTempDir(dir);
  });

  it('lists deferred messages, reads their content, flushes one domain (with subdomains)', async () => {
    for (const to of ['a@cust.test', 'b@sub.cust.test', 'c@other.test']) {
      assert.equal((await swaks({ server: smtp, from: 's@client.test', to, localAddress: client, headers: [`X-To: ${to}`], body: 'x' })).lastCode, 250);
    }
    await waitUntil('three deferred', () => node.queue.list().filter((m) => m.attempts >= 1 && !m.inFlight).length === 3, { timeoutMs: 10000 });
    const list = node.queue.list();
    assert.deepEqual(list.map((m) => m.recipients[0]).sort(), ['a@cust.test', 'b@sub.cust.test', 'c@other.test']);
    const first = list.find((m) => m.recipients[0] === 'a@cust.test')!;
    assert.equal(first.sender, 's@client.test');
    assert.ok(first.size > 0 && first.nextAttempt > Date.now() + 60_000, 'next retry is an hour away');
    const content = await node.queue.readContent(first.id);
    assert.match(content.toString(), /X-To: a@cust\.test/);
    assert.match(content.toString(), /^Received: from /);
    await mx.start();
    assert.equal(node.queue.flush({ domain: 'cust.test', subdomains: false }), 1);
    await mx.waitForMessages(1, 10000);
    assert.equal(node.queue.flush({ domain: 'cust.test', subdomains: true }), 1, 'only sub.cust.test is left under cust.test');
    await mx.waitForMessages(2, 10000);
    await waitUntil('only other.test left', () => node.queue.list().map((m) => m.recipients[0]).join() === 'c@other.test', { timeoutMs: 5000 });
  });

  it('pause stops deliveries, resume restarts them; markRecipientsDone removes a handed-off message', async () => {
    mx.clear();
    node.queue.pause();
    assert.equal(node.queue.flush({ domain: 'other.test', subdomains: false }), 1);
    await sleep(300);
    assert.equal(mx.messages.length, 0, 'paused: nothing delivered');
    node.queue.resume();
    await mx.waitForMessages(1, 10000);
    await waitUntil('an empty queue', () => node.queue.list().length === 0, { timeoutMs: 5000 });
    await mx.stop();
    assert.equal((await swaks({ server: smtp, from: 's@client.test', to: ['x@cust.test', 'y@cust.test'], localAddress: client, body: 'x' })).lastCode, 250);
    await waitUntil('deferred', () => node.queue.list().some((m) => m.attempts >= 1 && !m.inFlight), { timeoutMs: 10000 });
    const [m] = node.queue.list();
    await node.queue.markRecipientsDone(m.id, ['x@cust.test']);
    assert.deepEqual(node.queue.get(m.id)?.recipients, ['y@cust.test']);
    await node.queue.markRecipientsDone(m.id, ['y@cust.test'], 'handed off to 127.20.0.2');
    assert.equal(node.queue.list().length, 0);
  });

  it('setAccepting(false) answers new connections with 421 4.3.2; draining fails /readyz; routes are registrable', async () => {
    assert.equal((await fetch(`${admin}/readyz`)).status, 200);
    node.admin.route('POST', '/test-stop-accepting', (_req, res) => {
      node.setDraining(true);
      node.smtp.setAccepting(false);
      sendJson(res, 202, { draining: true });
    });
    const res = await fetch(`${admin}/test-stop-accepting`, { method: 'POST' });
    assert.equal(res.status, 202);
    const r = await swaks({ server: smtp, to: 'a@cust.test', localAddress: client, quitAfter: 'banner', timeoutSeconds: 5 });
    assert.equal(r.replies[0]?.code, 421, r.transcript);
    assert.match(r.replies[0]?.text ?? '', /^4\.3\.2 /);
    assert.equal((await fetch(`${admin}/readyz`)).status, 503);
    assert.equal((await fetch(`${admin}/healthz`)).status, 200);
    const q = await (await fetch(`${admin}/queue`)).json() as { draining: boolean; accepting: boolean; total: number };
    assert.deepEqual([q.draining, q.accepting, q.total], [true, false, 0]);
    node.smtp.setAccepting(true);
    node.setDraining(false);
    assert.equal((await fetch(`${admin}/readyz`)).status, 200);
  });
});
