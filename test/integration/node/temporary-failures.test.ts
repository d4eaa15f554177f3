// Temporary failures stay temporary: an empty MX answer followed by a SERVFAIL or a timeout
// on the A/AAAA lookup keeps the message queued (deferred, with that reason) and it is
// delivered once DNS answers; only a name that does not exist bounces. The resolver is a
// real dnsmasq; the zone under test is forwarded to a broken authoritative server.
// Addresses: 127.10.91.0/24.
import assert from 'node:assert/strict';
import { dnsmasqArgs } from '../../support/dnsmasq.ts';
import { freePort } from '../../support/addresses.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { spawnTracked, stopChild, tailOf, deathReason, waitUntil } from '../../support/processes.ts';
import { startBrokenDns, type BrokenDns } from './broken-dns.ts';
import { nodeTestAddress } from './helpers.ts';
import { swaks } from '../../support/swaks.ts';
import type { ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';

const A = (h: number) => nodeTestAddress(91, h);
const ZONE = 'nomx.test';

interface QueueJson { total: number; deferred: number }

describe('temporary DNS failures stay temporary', function () {
  this.timeout(90_000);
  let broken: BrokenDns;
  let dnsmasq: ChildProcess;
  let dnsServer: string;
  let dest: CaptureServer;
  let node: MailNode;

  before(async () => {
    broken = await startBrokenDns(A(54), { kind: 'servfail' });
    const port = await freePort(A(53), { udp: true });
    // authoritative NXDOMAIN for everything but the zone, which goes to the broken server
    const args = [...dnsmasqArgs(A(53), port, {}), `--server=/${ZONE}/${broken.address}#${broken.port}`];
    dnsmasq = spawnTracked('/usr/sbin/dnsmasq', args);
    const stderr = tailOf(dnsmasq.stderr);
    dnsmasq.stdout?.resume();
    dnsServer = `${A(53)}:${port}`;
    await waitUntil('dnsmasq answering', async () => {
      const r = new Resolver({ timeout: 300, tries: 1 });
      r.setServers([dnsServer]);
      try { await r.resolveMx('probe.invalid'); } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED' || (err as NodeJS.ErrnoException).code === 'ETIMEOUT') throw err; }
      return true;
    }, { timeoutMs: 10_000, abort: () => deathReason(dnsmasq, stderr) });
    dest = await startCaptureServer({ address: A(100) });
    node = await startMailNode({
      hostname: 'temp.test', address: A(1), relayNetworks: ['127.0.0.0/8'], relayDomains: [ZONE],
      dnsServer, deliveryPort: dest.port, retryInterval: 1, maxRetryInterval: 1, queueLifetime: 3600,
    }, { env: { MAILCLUSTER_DNS_CACHE_MS: '0' } });
  });

  after(async () => {
    await node?.close();
    await dest?.stop();
    if (dnsmasq) await stopChild(dnsmasq, 'SIGTERM', 3000);
    await broken?.stop();
  });

  const q = async () => (await node.queue()) as unknown as QueueJson;
  const send = async (to: string, from = 'alice@sender.nomx.test') => {
    const r = await swaks({ server: node.smtp, from, to: [to], body: 'dns test' });
    assert.equal(r.lastCode, 250, r.transcript);
  };
  const attempts = (rcpt: string) => node.logs().filter((l) => l.event === 'delivery' && Array.isArray(l.recipients) && (l.recipients as string[]).includes(rcpt));

  for (const failure of ['servfail', 'drop'] as const) {
    it(`an empty MX answer then ${failure === 'drop' ? 'a timeout' : 'SERVFAIL'} on A/AAAA: deferred with that reason, no bounce, delivered once DNS answers`, async () => {
      broken.setMode({ kind: failure });
      const rcpt = `bob-${failure}@${ZONE}`;
      await send(rcpt);
      await waitUntil('two deferred attempts', () => attempts(rcpt).filter((l) => l.result === 'deferred').length >= 2, { timeoutMs: 40_000 });
      const reasons = attempts(rcpt).map((l) => String(l.reason));
      assert.ok(reasons.every((r) => (failure === 'drop' ? /ETIMEOUT|ESERVFAIL|EREFUSED/ : /ESERVFAIL/).test(r)), reasons.join('\n'));
      assert.ok(attempts(rcpt).every((l) => l.result === 'deferred'), 'never failed');
      const report = await q();
      assert.deepEqual([report.total, report.deferred], [1, 1], 'the message waits, and no DSN was queued');
      assert.ok(!node.logs().some((l) => l.event === 'bounce'), 'no bounce');
      assert.ok(broken.queries.includes(`MX ${ZONE}`) && broken.queries.includes(`A ${ZONE}`), broken.queries.join(', '));
      // DNS answers again: the next retry delivers it
      broken.setMode({ kind: 'answer', ipv4: dest.address });
      await dest.waitForMessages(1, 30_000);
      assert.deepEqual(dest.messages.at(-1)?.rcptTo, [rcpt]);
      await waitUntil('queue empty', async () => (await q()).total === 0, { timeoutMs: 5000 });
      dest.clear();
    });
  }

  it('a domain that does not exist (NXDOMAIN) still bounces', async () => {
    await send('carol@no-such-domain.test', 'alice@sender.test');
    const bounce = await node.waitForLog((l) => l.event === 'bounce', 20_000);
    assert.ok(String(bounce.msg).includes('DSN queued'), JSON.stringify(bounce));
    assert.ok(attempts('carol@no-such-domain.test').some((l) => l.result === 'failed' && /not found/.test(String(l.reason))));
  });
});
