// A drain that really ends, and SIGTERM, with real nodes, a real DNS server and a real
// destination. A ledger records every 250; at the end every acknowledged message is either
// delivered to the destination or still on a spool. Addresses: 127.10.90.0/24.
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startMailNode, type MailNode, type MailNodeConfig } from '../../support/mail-node.ts';
import { waitUntil } from '../../support/processes.ts';
import { commonPort, header, nodeTestAddress, rawSession } from './helpers.ts';

const A = (h: number) => nodeTestAddress(90, h);
const DRAINING = A(1);
const PEER = A(2);
const DEST = A(100);
const DOMAIN = 'dest.test';

interface QueueJson {
  total: number; deferred: number; active: number; held: number; draining: boolean; listening: boolean;
  sessions: number; drained: boolean; oldestSeconds: number | null;
}

/** Every message a node acknowledged with 250, by its Message-ID. */
class Ledger {
  readonly acked = new Map<string, string>();
  record(id: string, reply: string): void {
    assert.match(reply, /^250 /, `message ${id}: ${reply}`);
    this.acked.set(id, reply);
  }
}

function messageText(id: string): string {
  return `From: <alice@src.test>\r\nTo: <bob@${DOMAIN}>\r\nMessage-ID: <${id}@test>\r\nSubject: ${id}\r\n\r\nbody of ${id}\r\n`;
}

/** One message over a raw session; returns the reply to the final dot. */
async function send(host: string, port: number, id: string): Promise<string> {
  const s = await rawSession(host, port);
  try {
    await s.command('EHLO client.test');
    await s.command('MAIL FROM:<alice@src.test>');
    await s.command(`RCPT TO:<bob@${DOMAIN}>`);
    const go = await s.command('DATA');
    assert.match(go, /^354/);
    return await s.command(messageText(id) + '.');
  } finally {
    s.close();
  }
}

/** POST /drain (the one place that knows how the admin API is called); its HTTP status. */
async function startDrain(node: MailNode): Promise<number> {
  return (await node.admin('/drain', { method: 'POST' })).status;
}

function connectRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('drain and SIGTERM (node side)', function () {
  this.timeout(120_000);
  let dns: DnsServer;
  let dest: CaptureServer;
  let draining: MailNode;
  let peer: MailNode;
  let smtpPort: number;
  let deliveryPort: number;

  const q = async (n: MailNode) => (await n.queue()) as unknown as QueueJson;
  const deliveredIds = () => new Set(dest.messages.map((m) => /<(.*)@test>/.exec(header(m.raw, 'Message-ID') ?? '')?.[1]));

  before(async () => {
    [smtpPort, deliveryPort] = [await commonPort([DRAINING, PEER]), await commonPort([DEST])];
    dns = await startDns({ address: A(53), mx: [{ domain: DOMAIN, host: `mail.${DOMAIN}`, preference: 10 }], a: [{ name: `mail.${DOMAIN}`, ip: DEST }] });
    dest = await startCaptureServer({ address: DEST, port: deliveryPort, listen: false });
    const base = (address: string, hostname: string, retry: number): MailNodeConfig => ({
      hostname, address, smtpPort,
      etrnCluster: [DRAINING, PEER].map((node) => ({ node, user: 'etrn', password: 'pw' })),
      relayDomains: [DOMAIN], dnsServer: dns.server, deliveryPort,
      retryInterval: retry, maxRetryInterval: retry,
      selfAddresses: [DRAINING, PEER],
    });
    const env = { MAILCLUSTER_DRAIN_FLUSH_WAIT_MS: '2000', MAILCLUSTER_DRAIN_RETRY_MS: '300', MAILCLUSTER_DRAIN_PEER_REST_MS: '300', MAILCLUSTER_DELIVERY_CONNECT_TIMEOUT_MS: '2000' };
    // the draining node holds its mail (long retry); the peer retries fast once the destination is up
    draining = await startMailNode(base(DRAINING, 'draining.test', 3600), { env });
    peer = await startMailNode(base(PEER, 'peer.test', 1), { env });
  });

  after(async () => {
    for (const n of [draining, peer]) await n?.close();
    await dest?.stop();
    await dns?.stop();
  });

  it('closes the listener, lets an open DATA finish (250) and then answers 421, hands everything off, and reports drained only when nothing is left', async () => {
    const ledger = new Ledger();
    for (let i = 0; i < 20; i++) ledger.record(`early-${i}`, await send(DRAINING, smtpPort, `early-${i}`));
    await waitUntil('20 deferred on the draining node', async () => (await q(draining)).deferred === 20, { timeoutMs: 20_000 });
    // the peer is down for now: the hand-off loop must keep going, and drained must stay false
    await peer.stop();

    // a session held open across the drain, in the middle of DATA
    const open = await rawSession(DRAINING, smtpPort);
    await open.command('EHLO late.test');
    await open.command('MAIL FROM:<alice@src.test>');
    await open.command(`RCPT TO:<bob@${DOMAIN}>`);
    assert.match(await open.command('DATA'), /^354/);

    // and one whose client will vanish in the middle of DATA
    const abandoned = await rawSession(DRAINING, smtpPort);
    await abandoned.command('EHLO gone.test');
    await abandoned.command('MAIL FROM:<alice@src.test>');
    await abandoned.command(`RCPT TO:<bob@${DOMAIN}>`);
    assert.match(await abandoned.command('DATA'), /^354/);

    assert.equal(await startDrain(draining), 202);
    await waitUntil('the listener closed', async () => (await q(draining)).listening === false, { timeoutMs: 5000 });
    assert.ok(await connectRefused(DRAINING, smtpPort), 'a new connection is refused: the listener is closed');
    let report = await q(draining);
    assert.deepEqual([report.draining, report.sessions, report.drained], [true, 2, false]);
    abandoned.close(); // gone mid-DATA: nothing was acknowledged, and it must not hold the drain open
    assert.equal((await draining.admin('/readyz')).status, 503);

    // the transaction under way completes after the drain began: a late arrival
    ledger.record('late-0', await open.command(messageText('late-0') + '.'));
    // a new transaction in the same session: 421, and the session ends
    assert.match(await open.command('MAIL FROM:<alice@src.test>'), /^421 4\.3\.2 /);
    open.close();
    await waitUntil('the session gone', async () => (await q(draining)).sessions === 0, { timeoutMs: 5000 });

    // nowhere to hand to: the mail stays, and the node is not drained
    await new Promise((r) => setTimeout(r, 2500));
    report = await q(draining);
    assert.equal(report.total, 21, 'every acknowledged message still queued here');
    assert.equal(report.drained, false, 'never drained with mail in it');
    assert.equal(JSON.parse((await draining.admin('/drain')).body).drained, false);

    // the peer comes back: everything moves, then the node says drained
    await peer.start();
    await waitUntil('drained', async () => (await q(draining)).drained, { timeoutMs: 30_000 });
    report = await q(draining);
    assert.deepEqual([report.total, report.listening, report.sessions, report.oldestSeconds], [0, false, 0, null]);
    assert.equal((await q(peer)).total, 21, 'the peer holds all 21');
    const progress = JSON.parse((await draining.admin('/drain')).body);
    assert.equal(progress.handedOff, 21);
    assert.equal(progress.state, 'drained');

    // the destination comes up: every acknowledged message is delivered (by the peer, envelope kept)
    await dest.start();
    await waitUntil('every acknowledged message delivered', () => [...ledger.acked.keys()].every((id) => deliveredIds().has(id)), { timeoutMs: 30_000 });
    const duplicates = dest.messages.length - deliveredIds().size;
    console.log(`      ledger: ${ledger.acked.size} acknowledged, ${deliveredIds().size} delivered, ${duplicates} duplicates`);
    assert.ok(dest.messages.every((m) => m.remoteAddress === PEER && m.mailFrom === 'alice@src.test' && m.rcptTo.join() === `bob@${DOMAIN}`));
    assert.equal(duplicates, 0);
  });

  it('SIGTERM hands the queue to a peer within the grace period, and the next start finds an empty spool', async () => {
    await draining.restart(); // a fresh, undrained node on the same (empty) spool
    await dest.stop();
    dest.clear();
    const ledger = new Ledger();
    for (let i = 0; i < 10; i++) ledger.record(`term-${i}`, await send(DRAINING, smtpPort, `term-${i}`));
    await waitUntil('10 deferred', async () => (await q(draining)).deferred === 10, { timeoutMs: 20_000 });
    const peerBefore = (await q(peer)).total;
    const t0 = Date.now();
    await draining.stop(30_000);
    const took = Date.now() - t0;
    assert.equal((await q(peer)).total, peerBefore + 10, 'the peer holds the 10');
    assert.ok(draining.logs().some((l) => l.event === 'stop' && l.drained === true), 'the node said it drained before stopping');
    console.log(`      SIGTERM with 10 queued and a live peer: exited after ${took} ms`);
    await draining.start();
    assert.equal((await q(draining)).total, 0);
    await dest.start();
    await waitUntil('delivered by the peer', () => [...ledger.acked.keys()].every((id) => deliveredIds().has(id)), { timeoutMs: 30_000 });
  });

  it('SIGTERM with no peer reachable stops at the end of its grace period and keeps every message on the spool', async () => {
    await draining.stop();
    await dest.stop();
    const restarted = await startMailNode({ ...draining.config, hostname: 'draining.test' }, {
      dir: draining.dir, env: { MAILCLUSTER_TERM_GRACE_MS: '3000', MAILCLUSTER_DRAIN_RETRY_MS: '300', MAILCLUSTER_DRAIN_PEER_REST_MS: '300' },
    });
    try {
      await peer.stop();
      const ledger = new Ledger();
      for (let i = 0; i < 5; i++) ledger.record(`kept-${i}`, await send(DRAINING, smtpPort, `kept-${i}`));
      await waitUntil('5 deferred', async () => (await q(restarted)).deferred === 5, { timeoutMs: 20_000 });
      const t0 = Date.now();
      await restarted.stop(20_000);
      const took = Date.now() - t0;
      assert.ok(took >= 2500 && took < 15_000, `stopped after its 3 s grace (${took} ms)`);
      assert.ok(restarted.logs().some((l) => l.event === 'stop' && l.drained === false), 'stopped undrained');
      await restarted.start();
      assert.equal((await q(restarted)).total, 5, 'nothing handed off, nothing deleted');
    } finally {
      await restarted.stop();
      await peer.start();
    }
  });
  it('under load: clients sending back to back when the drain starts each finish their transaction, then get 421; every 250 is delivered', async () => {
    await dest.stop();
    dest.clear();
    await draining.start(); // the same spool: what the last test kept goes along too
    const ledger = new Ledger();
    const endings: string[] = [];
    const client = async (c: number) => {
      let s: Awaited<ReturnType<typeof rawSession>>;
      try { s = await rawSession(DRAINING, smtpPort); } catch { endings.push('refused'); return; }
      try {
        await s.command('EHLO load.test');
        for (let i = 0; ; i++) {
          const mail = await s.command('MAIL FROM:<alice@src.test>');
          if (!mail.startsWith('250')) { endings.push(mail.slice(0, 9)); return; }
          assert.match(await s.command(`RCPT TO:<bob@${DOMAIN}>`), /^250/);
          assert.match(await s.command('DATA'), /^354/);
          const id = `load-${c}-${i}`;
          ledger.record(id, await s.command(messageText(id) + '.')); // a transaction under way always ends in 250
        }
      } finally {
        s.close();
      }
    };
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    await new Promise((r) => setTimeout(r, 400));
    const t0 = Date.now();
    assert.equal(await startDrain(draining), 202);
    await Promise.all(clients);
    assert.deepEqual([...new Set(endings)], ['421 4.3.2'], 'every client ended with 421 at its next MAIL FROM');
    await waitUntil('drained', async () => (await q(draining)).drained, { timeoutMs: 30_000 });
    const tookMs = Date.now() - t0;
    await dest.start();
    await waitUntil('every acknowledged message delivered', () => [...ledger.acked.keys()].every((id) => deliveredIds().has(id)), { timeoutMs: 30_000 });
    const ours = dest.messages.filter((m) => /load-/.test(header(m.raw, 'Message-ID') ?? ''));
    console.log(`      under load: ${ledger.acked.size} acknowledged by 8 clients, POST /drain -> drained ${tookMs} ms, ${ours.length - ledger.acked.size} duplicates`);
    assert.equal(ours.length, ledger.acked.size, 'each once');
  });

  it('a session that stays open past the bound is ended with 421, and then the node is drained', async () => {
    const node = await startMailNode({ hostname: 'idle.test', address: A(3), relayDomains: [DOMAIN], dnsServer: dns.server, deliveryPort },
      { env: { MAILCLUSTER_DRAIN_SESSION_WAIT_MS: '1500' } });
    try {
      const idle = await rawSession(A(3), Number(node.smtp.split(':')[1]));
      await idle.command('EHLO idle.test');
      const t0 = Date.now();
      assert.equal(await startDrain(node), 202);
      assert.equal((await q(node)).drained, false, 'not drained while a session is open');
      // the client says nothing more; the node ends the session itself after the bound
      await waitUntil('drained', async () => (await q(node)).drained, { timeoutMs: 10_000 });
      assert.ok(Date.now() - t0 >= 1400, 'the session had its time');
      assert.match(await idle.command('NOOP'), /^421 4\.3\.2 /, 'the node said 421 before closing');
      await node.waitForLog((l) => l.event === 'drain' && /closing them with 421/.test(String(l.msg)), 5000);
      idle.close();
      // a reload (a scale event rewrites every ConfigMap) must not open the listener again
      const reloaded = node.waitForLog((l) => l.event === 'reload' && l.result === 'ok', 10_000);
      await node.reload({ relayDomains: [DOMAIN, 'other.test'] });
      await reloaded;
      assert.ok(await connectRefused(A(3), Number(node.smtp.split(':')[1])));
      assert.deepEqual([(await q(node)).listening, (await q(node)).drained], [false, true]);
    } finally {
      await node.close();
    }
  });
  it('with no peer listed (the last node of a deleted cluster) a draining node delivers its mail itself once the destination is back, then is drained', async () => {
    await dest.stop();
    dest.clear();
    const node = await startMailNode({ hostname: 'last.test', address: A(4), relayDomains: [DOMAIN], dnsServer: dns.server, deliveryPort, retryInterval: 1, maxRetryInterval: 1 },
      { env: { MAILCLUSTER_DRAIN_FLUSH_WAIT_MS: '1000', MAILCLUSTER_DRAIN_RETRY_MS: '300', MAILCLUSTER_DELIVERY_CONNECT_TIMEOUT_MS: '1000' } });
    try {
      const port = Number(node.smtp.split(':')[1]);
      const ledger = new Ledger();
      for (let i = 0; i < 6; i++) ledger.record(`last-${i}`, await send(A(4), port, `last-${i}`));
      await waitUntil('6 deferred', async () => (await q(node)).deferred === 6, { timeoutMs: 20_000 });
      assert.equal(await startDrain(node), 202);
      await new Promise((r) => setTimeout(r, 2500));
      let report = await q(node);
      assert.deepEqual([report.total, report.drained], [6, false], 'the destination is down: the mail stays, not drained');
      const progress = JSON.parse((await node.admin('/drain')).body);
      assert.equal(progress.state, 'delivering');
      assert.match(progress.lastError, /no etrn-cluster peer/);
      await dest.start();
      await waitUntil('drained', async () => (await q(node)).drained, { timeoutMs: 30_000 });
      report = await q(node);
      assert.deepEqual([report.total, report.listening], [0, false]);
      const ours = dest.messages.filter((m) => /last-/.test(header(m.raw, 'Message-ID') ?? ''));
      assert.deepEqual(new Set(ours.map((m) => /<(.*)@test>/.exec(header(m.raw, 'Message-ID') ?? '')?.[1])), new Set(ledger.acked.keys()));
      assert.equal(ours.length, ledger.acked.size, 'each once');
      assert.ok(ours.every((m) => m.remoteAddress === A(4)), 'delivered by the draining node itself');
    } finally {
      await node.close();
    }
  });
});
