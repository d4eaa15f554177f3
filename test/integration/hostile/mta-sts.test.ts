// MTA-STS (RFC 8461) with `PARAM mta-sts on`: the TXT record from a real dnsmasq, the
// policy from a local HTTPS server on port 443 (verified against the test CA given as
// smtp-tls-ca-file). Enforce: only MX hosts of the policy, TLS verified; a domain without a
// policy is untouched. Addresses: 127.10.213.0/24.
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { nodeTestAddress, commonPort } from '../node/helpers.ts';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { makeTempDir, removeTempDir, sleep } from '../../support/processes.ts';
import { makeCa, makeLeaf, makeSelfSigned } from '../../support/pki.ts';
import { swaks } from '../../support/swaks.ts';
import { mxMatches, parseStsPolicy, parseStsTxt } from '../../../node-image/src/routing/mta-sts.ts';

const A = (h: number) => nodeTestAddress(213, h);

describe('MTA-STS (RFC 8461) for outbound delivery', function () {
  this.timeout(90000);
  let dir: string;
  let dns: DnsServer;
  let policyServer: https.Server;
  let node: MailNode;
  let good: CaptureServer;
  let rogue: CaptureServer;
  const policies: Record<string, string> = {
    'mta-sts.sts.test': 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmx: *.backup.sts.test\nmax_age: 600\n',
    'mta-sts.badcert.test': 'version: STSv1\nmode: enforce\nmx: rogue.other.test\nmax_age: 600\n',
  };
  const fetched: string[] = [];

  before(async () => {
    dir = makeTempDir('mta-sts');
    const ca = makeCa(dir, 'sts-ca');
    const policyCert = makeLeaf(dir, 'policy', Object.keys(policies), ca);
    const mxCert = makeLeaf(dir, 'mx', ['mx.sts.test'], ca);
    const rogueCert = makeSelfSigned(dir, 'rogue', ['rogue.other.test']);
    const port = await commonPort([A(21), A(22)]);
    good = await startCaptureServer({ address: A(21), port, tls: { cert: readFileSync(mxCert.cert), key: readFileSync(mxCert.key) } });
    rogue = await startCaptureServer({ address: A(22), port, tls: { cert: readFileSync(rogueCert.cert), key: readFileSync(rogueCert.key) } });
    policyServer = https.createServer({ cert: readFileSync(policyCert.cert), key: readFileSync(policyCert.key) }, (req, res) => {
      const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
      fetched.push(`${host}${req.url}`);
      const body = req.url === '/.well-known/mta-sts.txt' ? policies[host] : undefined;
      if (!body) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(body);
    });
    await new Promise<void>((r) => policyServer.listen(443, A(30), r));
    dns = await startDns({
      address: A(53),
      mx: [
        // the rogue host has the better preference: without MTA-STS it would get the mail
        { domain: 'sts.test', host: 'rogue.other.test', preference: 5 },
        { domain: 'sts.test', host: 'mx.sts.test', preference: 10 },
        { domain: 'nosts.test', host: 'rogue.other.test', preference: 5 },
        { domain: 'nosts.test', host: 'mx.sts.test', preference: 10 },
        { domain: 'badcert.test', host: 'rogue.other.test', preference: 10 },
      ],
      a: [
        { name: 'mx.sts.test', ip: A(21) }, { name: 'rogue.other.test', ip: A(22) },
        { name: 'mta-sts.sts.test', ip: A(30) }, { name: 'mta-sts.badcert.test', ip: A(30) },
      ],
      txt: [
        { name: '_mta-sts.sts.test', text: 'v=STSv1; id=20261130' },
        { name: '_mta-sts.badcert.test', text: 'v=STSv1; id=1' },
      ],
    });
    node = await startMailNode({
      hostname: 'node.cluster.test', address: A(1), relayNetworks: [`${A(60)}/32`], dnsServer: dns.server, deliveryPort: port,
      retryInterval: 0.3, maxRetryInterval: 0.5, smtpTlsCaFile: ca.cert, extraSmtpserverLines: ['PARAM mta-sts on'],
    });
  });

  after(async () => {
    await node?.close();
    await good?.stop();
    await rogue?.stop();
    await new Promise<void>((r) => (policyServer ? policyServer.close(() => r()) : r()));
    await dns?.stop();
    if (dir) removeTempDir(dir);
  });

  const send = async (to: string) => {
    const r = await swaks({ server: node.smtp, from: 's@client.test', to, localAddress: A(60) });
    assert.equal(r.lastCode, 250, r.transcript);
  };

  it('pure parts: TXT id, policy file, MX patterns', () => {
    assert.equal(parseStsTxt([['v=STSv1; id=abc123']]), 'abc123');
    assert.equal(parseStsTxt([['v=STSv1; id=a'], ['v=STSv1; id=b']]), null, 'two records: no policy');
    assert.equal(parseStsTxt([['v=spf1 -all']]), null);
    assert.deepEqual(parseStsPolicy('version: STSv1\r\nmode: testing\r\nmx: MX.Example.COM.\r\nmax_age: 86400\r\n'), { mode: 'testing', mx: ['mx.example.com'], maxAge: 86400 });
    assert.ok(parseStsPolicy('version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n') instanceof Error);
    assert.ok(parseStsPolicy('version: STSv1\nmode: enforce\nmax_age: 1\n') instanceof Error);
    assert.equal(mxMatches('a.backup.sts.test', ['*.backup.sts.test']), true);
    assert.equal(mxMatches('x.a.backup.sts.test', ['*.backup.sts.test']), false, 'one label only');
    assert.equal(mxMatches('backup.sts.test', ['*.backup.sts.test']), false);
    assert.equal(mxMatches('MX.sts.test.', ['mx.sts.test']), true);
  });

  it('enforce: only the policy MX, over verified TLS; the better-preference rogue MX gets nothing', async () => {
    await send('u@sts.test');
    const [m] = await good.waitForMessages(1, 20000);
    assert.equal(m.secure, true);
    assert.equal(rogue.messages.length, 0);
    assert.ok(fetched.includes('mta-sts.sts.test/.well-known/mta-sts.txt'), fetched.join(' '));
  });

  it('a domain without a policy is routed as before (the rogue best MX gets it)', async () => {
    await send('u@nosts.test');
    await rogue.waitForMessages(1, 20000);
  });

  it('enforce with an MX whose certificate does not verify: held (deferred), never sent', async () => {
    const before = rogue.messages.length;
    await send('u@badcert.test');
    await sleep(2500);
    assert.equal(rogue.messages.length, before, 'nothing to the unverifiable MX');
    const q = await node.queue();
    assert.equal(q.total, 1, 'the message waits');
    const line = node.logs().reverse().find((l) => l.event === 'delivery' && l.domain === 'badcert.test');
    assert.match(String(line?.reason), /certificate|self.signed|verify/i, JSON.stringify(line));
  });
});
