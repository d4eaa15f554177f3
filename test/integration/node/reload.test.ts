// Reload on a changed config dir (kubelet ..data swap, SIGHUP) without dropping
// connections; a broken config at start (non-zero exit naming file:line) and on reload
// (the last good one stays); STARTTLS and certificate reload. Addresses: 127.10.4.0/24.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { swaks } from '../../support/swaks.ts';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
import { nodeTestAddress, rawSession } from './helpers.ts';

const A = (h: number) => nodeTestAddress(4, h);
const client = A(50);

function selfSigned(dir: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${cn}.crt`);
  const key = join(dir, `${cn}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/** The subject CN of the certificate a STARTTLS handshake presents. */
function presentedCn(server: string): string {
  const r = spawnSync('openssl', ['s_client', '-starttls', 'smtp', '-connect', server], { input: '', encoding: 'utf8', timeout: 10000 });
  const m = /subject=.*CN\s*=\s*([^\s,/]+)/.exec(r.stdout);
  return m ? m[1] : `(none: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)})`;
}

describe('mail node: reload and configuration errors', function () {
  this.timeout(60000);
  let node: MailNode;

  before(async () => {
    node = await startMailNode({ hostname: 'node4.cluster.test', address: A(1), relayDomains: ['a.test'], selfAddresses: [A(1)] },
      { kubeletStyle: true, env: { MAILCLUSTER_RELOAD_DEBOUNCE_MS: '100' } });
  });
  after(async () => { await node?.close(); });

  const rcpt = (to: string) => swaks({ server: node.smtp, from: 's@client.test', to, localAddress: client, quitAfter: 'rcpt' });
  const reloads = (result: string) => node.metric('mailcluster_config_reloads_total', { result });
  const okLines = () => node.logs().filter((l) => l.event === 'reload' && l.result === 'ok').length;
  /** Rewrites the config and waits for the reload it causes. */
  const reloadAndWait = async (change: Parameters<MailNode['reload']>[0]) => {
    const before = okLines();
    await node.reload(change);
    await waitUntil('a reload', () => okLines() > before, { timeoutMs: 10000 });
  };

  it('applies a kubelet-style ..data swap to new transactions without dropping an open session', async () => {
    const pid = node.pid();
    const session = await rawSession(A(1), node.config.smtpPort, client);
    try {
      assert.match(await session.command('EHLO client.test'), /^250/);
      assert.equal((await rcpt('u@b.test')).lastCode, 550);
      const before = await reloads('ok');
      await node.reload({ relayDomains: ['a.test', 'b.test'] }, { via: 'kubelet' });
      await node.waitForLog((l) => l.event === 'reload' && l.result === 'ok');
      assert.equal(await reloads('ok'), before + 1);
      assert.equal((await rcpt('u@b.test')).lastCode, 250);
      // the session opened before the reload is still there and follows the new rules
      assert.match(await session.command('MAIL FROM:<s@client.test>'), /^250/);
      assert.match(await session.command('RCPT TO:<u@b.test>'), /^250/);
      assert.equal(node.pid(), pid, 'no restart');
    } finally {
      session.close();
    }
  });

  it('reloads on SIGHUP', async () => {
    await node.reload({ relayDomains: ['a.test', 'b.test', 'c.test'] }, { via: 'sighup' });
    await node.waitForLog((l) => l.event === 'reload' && l.result === 'ok' && (l.reason === 'SIGHUP' || l.reason === 'config change'));
    assert.equal((await rcpt('u@c.test')).lastCode, 250);
    const hup = node.logs().filter((l) => l.event === 'reload' && l.reason === 'SIGHUP');
    assert.ok(hup.length >= 1, 'a SIGHUP reload was logged');
  });

  it('keeps the last good config on a broken reload and says which file and line', async () => {
    const errorsBefore = await reloads('error');
    await node.reload({ extraSmtpserverLines: ['PARAM no-such-param 1'] });
    const line = await node.waitForLog((l) => l.event === 'reload' && l.result === 'error');
    assert.match(String(line.err), /smtpserver\.conf:\d+: unknown PARAM "no-such-param"/);
    assert.match(String(line.file), /smtpserver\.conf$/);
    assert.ok(Number(line.line) > 0);
    assert.equal(await reloads('error'), errorsBefore + 1);
    assert.equal((await rcpt('u@c.test')).lastCode, 250, 'old relay domains still apply');
    assert.equal((await rcpt('u@zzz.test')).lastCode, 550);
    assert.equal((await node.admin('/readyz')).status, 200);
    await reloadAndWait({ extraSmtpserverLines: [], relayDomains: ['a.test'] });
    assert.equal((await rcpt('u@c.test')).lastCode, 550);
  });

  it('applies a reloaded connection limit: one connection too many gets 421', async () => {
    await reloadAndWait({ maxConnections: 2 });
    const open = [await rawSession(A(1), node.config.smtpPort, client), await rawSession(A(1), node.config.smtpPort, client)];
    try {
      assert.match(open[0].greeting, /^220 /);
      assert.match(open[1].greeting, /^220 /);
      const third = await rawSession(A(1), node.config.smtpPort, client);
      third.close();
      assert.match(third.greeting, /^421 /);
    } finally {
      for (const s of open) s.close();
    }
    await reloadAndWait({ maxConnections: undefined });
  });

  it('refuses to start on a broken config: non-zero exit naming file and line', async () => {
    await assert.rejects(
      startMailNode({ hostname: 'broken.test', address: A(2), extraSmtpserverLines: ['PARAM relay-network 10.0.0.0/99'] }, { readyTimeoutMs: 10000 }),
      (err: Error) => {
        assert.match(err.message, /process exited \(code 1/);
        assert.match(err.message, /smtpserver\.conf:\d+: bad prefix length in "10\.0\.0\.0\/99"/);
        return true;
      });
    await assert.rejects(
      startMailNode({ hostname: 'broken2.test', address: A(3), extraZmailerLines: ['this is not KEY=value'] }, { readyTimeoutMs: 10000 }),
      /zmailer\.conf:4: expected KEY=value/);
  });

  it('offers STARTTLS with the configured certificate and picks up a replaced one', async () => {
    const dir = makeTempDir('tls');
    try {
      const tlsDir = join(dir, 'tls');
      mkdirSync(tlsDir);
      const first = selfSigned(dir, 'first.cluster.test');
      const second = selfSigned(dir, 'second.cluster.test');
      const install = (c: { cert: string; key: string }) => {
        for (const [from, name] of [[c.cert, 'tls.crt'], [c.key, 'tls.key']] as const) {
          writeFileSync(join(tlsDir, `.${name}`), execFileSync('cat', [from]));
          renameSync(join(tlsDir, `.${name}`), join(tlsDir, name));
        }
      };
      install(first);
      const before = await swaks({ server: node.smtp, to: 'u@a.test', localAddress: client, quitAfter: 'helo' });
      assert.doesNotMatch(before.transcript, /STARTTLS/, 'no STARTTLS without a certificate');
      await node.reload({ tlsCertFile: join(tlsDir, 'tls.crt'), tlsKeyFile: join(tlsDir, 'tls.key') });
      await node.waitForLog((l) => l.event === 'reload' && l.result === 'ok' && l.tlsChanged === true);
      // (swaks here lacks Net::SSLeay: nodemailer is the TLS client)
      const transport = nodemailer.createTransport({ host: A(1), port: node.config.smtpPort, localAddress: client, requireTLS: true, tls: { rejectUnauthorized: false } });
      try {
        const info = await transport.sendMail({ envelope: { from: 's@client.test', to: ['u@a.test'] }, raw: 'Subject: over tls\r\n\r\nx\r\n' });
        assert.match(info.response, /^250 /);
      } finally { transport.close(); }
      await node.waitForLog((l) => l.event === 'smtp' && l.result === 'accepted' && l.tls === true && (l.rcpts as string[])?.[0] === 'u@a.test');
      assert.equal(presentedCn(node.smtp), 'first.cluster.test');
      install(second); // only the certificate files change
      await node.waitForLog((l) => l.event === 'reload' && l.result === 'ok' && l.tlsChanged === true && node.logs().filter((x) => x.tlsChanged === true).length >= 2);
      assert.equal(presentedCn(node.smtp), 'second.cluster.test');
    } finally {
      removeTempDir(dir);
    }
  });
});
