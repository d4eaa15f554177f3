// Issue-10 pure pieces: PARAM parsing, the admin credential decision, AUTH hashes, the
// per-client window counter, the outbound TLS policy.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseSmtpserverConf } from '../../../node-image/src/config/parse.ts';
import { loadConfigDir } from '../../../node-image/src/config/load.ts';
import { parseSmtpAuthUsers, tlsLevelFor } from '../../../node-image/src/config/security.ts';
import { ConfigError } from '../../../node-image/src/config/types.ts';
import { adminCredentialHeader, decideAdminAuth, PROXY_AUTH_HEADER } from '../../../node-image/src/admin/auth.ts';
import type { IncomingMessage } from 'node:http';
import { authenticate, hashPassword, parsePhcScrypt, verifyPassword } from '../../../node-image/src/smtp/auth.ts';
import { WindowCounter } from '../../../node-image/src/smtp/limits.ts';
import { levelForDomain, tlsConnectionOptions } from '../../../node-image/src/delivery/tls-policy.ts';

const CHEAP = { ln: 4, r: 8, p: 1 };
const FILE = '/etc/mailcluster/smtpserver.conf';

function configError(fn: () => unknown): ConfigError {
  try { fn(); } catch (err) { assert.ok(err instanceof ConfigError, String(err)); return err; }
  assert.fail('expected a ConfigError');
}

describe('security PARAMs (smtpserver.conf)', () => {
  it('reads every issue-10 PARAM', () => {
    const s = parseSmtpserverConf([
      `PARAM admin-token-sha256 ${'AB'.repeat(32)}`,
      'PARAM smtp-auth-users /etc/mailcluster/smtp-auth/users',
      'PARAM smtp-greet-pause 0.5',
      'PARAM smtp-client-connection-rate-limit 30',
      'PARAM smtp-client-connection-rate-time 60',
      'PARAM smtp-auth-failure-limit 4',
      'PARAM smtp-auth-failure-window 600',
      'PARAM smtp-auth-failure-delay 2',
      'PARAM etrn-domain-rate-limit 3',
      'PARAM etrn-domain-rate-time 30',
      'PARAM etrn-relayed-window 15',
      'PARAM peer-tls-ca-file /etc/mailcluster/peer-tls/ca.crt',
      'PARAM peer-tls-cert-file /etc/mailcluster/peer-tls/tls.crt',
      'PARAM peer-tls-key-file /etc/mailcluster/peer-tls/tls.key',
      'PARAM peer-tls-name mc-peers.mail.svc',
      'PARAM smtp-tls-security-level VERIFY',
      'PARAM smtp-tls-policy Example.COM. encrypt',
      'PARAM smtp-tls-policy .example.net none',
      'PARAM smtp-tls-ca-file /etc/ssl/certs/ca-certificates.crt',
      'PARAM mta-sts on',
    ].join('\n'), FILE).security;
    assert.equal(s.mtaSts, true);
    assert.deepEqual(s.adminTokenSha256, { hex: 'ab'.repeat(32) });
    assert.equal(s.smtpAuthUsers, '/etc/mailcluster/smtp-auth/users');
    assert.equal(s.smtpGreetPause, 0.5);
    assert.equal(s.smtpClientConnectionRateLimit, 30);
    assert.equal(s.smtpAuthFailureLimit, 4);
    assert.equal(s.etrnRelayedWindow, 15);
    assert.equal(s.peerTlsName, 'mc-peers.mail.svc');
    assert.equal(s.smtpTlsSecurityLevel, 'verify');
    assert.deepEqual(s.smtpTlsPolicy, { 'example.com': 'encrypt', '.example.net': 'none' });
    assert.deepEqual(parseSmtpserverConf('PARAM admin-token-sha256 @/etc/mailcluster/admin-token.sha256\n', FILE).security.adminTokenSha256, { file: '/etc/mailcluster/admin-token.sha256' });
  });

  it('names file and line for bad values and incomplete peer TLS', () => {
    assert.match(configError(() => parseSmtpserverConf('\nPARAM admin-token-sha256 1234', FILE)).message, /smtpserver\.conf:2: .*64 hex/);
    assert.match(configError(() => parseSmtpserverConf('PARAM smtp-tls-security-level dane', FILE)).message, /:1: .*none, may, encrypt, verify/);
    assert.match(configError(() => parseSmtpserverConf('PARAM smtp-greet-pause -1', FILE)).message, /:1: /);
    assert.match(configError(() => parseSmtpserverConf('PARAM smtp-tls-policy example.com', FILE)).message, /:1: .*<domain> <none/);
    assert.match(configError(() => parseSmtpserverConf('PARAM x\nPARAM peer-tls-name a.b', FILE)).message, /:1: unknown PARAM/);
    assert.match(configError(() => parseSmtpserverConf('# c\nPARAM peer-tls-name a.b', FILE)).message, /:2: peer-tls-ca-file, peer-tls-cert-file, peer-tls-key-file and peer-tls-name must be set together/);
  });

  it('loads the admin digest from @path and the AUTH users file; defaults when unset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sec-'));
    try {
      const token = 'operator-made-token';
      writeFileSync(join(dir, 'admin-token.sha256'), createHash('sha256').update(token).digest('hex').toUpperCase() + '\n');
      writeFileSync(join(dir, 'users'), `# users\nalice:${await hashPassword('pw', CHEAP)}:RELAY\nbob:${await hashPassword('pw2', CHEAP)}:\n`);
      writeFileSync(join(dir, 'zmailer.conf'), `POSTOFFICE=${dir}/spool\n`);
      writeFileSync(join(dir, 'smtpserver.conf'), `PARAM admin-token-sha256 @${dir}/admin-token.sha256\nPARAM smtp-auth-users ${dir}/users\n`);
      const { config, extraFiles } = loadConfigDir(dir, {});
      assert.equal(config.security.adminTokenSha256, createHash('sha256').update(token).digest('hex'));
      assert.deepEqual(config.security.smtpAuthUsers?.map((u) => [u.user, u.relay]), [['alice', true], ['bob', false]]);
      assert.ok(extraFiles.includes(`${dir}/admin-token.sha256`) && extraFiles.includes(`${dir}/users`), 'both files are watched');
      writeFileSync(join(dir, 'smtpserver.conf'), 'PARAM hostname n.test\n');
      const d = loadConfigDir(dir, {}).config.security;
      assert.equal(d.adminTokenSha256, null);
      assert.equal(d.smtpAuthUsers, null, 'AUTH off unless configured');
      assert.equal(d.smtpGreetPause, 1);
      assert.equal(d.smtpClientConnectionRateLimit, 0);
      assert.equal(d.smtpTlsSecurityLevel, 'may');
      writeFileSync(join(dir, 'smtpserver.conf'), `PARAM smtp-auth-users ${dir}/missing\n`);
      assert.match(configError(() => loadConfigDir(dir, {})).message, /smtpserver\.conf:1: smtp-auth-users file .*ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('smtp-auth-users lines: a PHC scrypt string, no plaintext', () => {
    const fail = (line: number, m: string): never => { throw new Error(`${line}: ${m}`); };
    assert.throws(() => parseSmtpAuthUsers('alice:plaintext:RELAY', fail), /1: user alice: password must be a PHC scrypt string/);
    assert.throws(() => parseSmtpAuthUsers('\nalice', fail), /2: expected user:/);
  });
});

describe('admin credential (contract 1)', () => {
  const token = 'the-token';
  const digest = createHash('sha256').update(token).digest('hex');
  it('403 without a configured digest, 401 missing/wrong/other scheme, ok with the token', () => {
    const unset = decideAdminAuth(`Bearer ${token}`, null);
    assert.ok(!unset.ok && unset.status === 403);
    for (const h of [undefined, '', 'Bearer', `Basic ${token}`, `Bearer ${token}x`, `Bearer ${digest}`, `Bearer  ${token} extra`]) {
      const d = decideAdminAuth(h, digest);
      assert.ok(!d.ok && d.status === 401, String(h));
    }
    assert.deepEqual(decideAdminAuth(`Bearer ${token}`, digest), { ok: true });
    assert.deepEqual(decideAdminAuth(`bearer ${token}`, digest), { ok: true });
  });
  it('property: only the exact token passes', () => {
    fc.assert(fc.property(fc.string({ minLength: 1 }).filter((s) => !/\s/.test(s)), (guess) => decideAdminAuth(`Bearer ${guess}`, digest).ok === (guess === token)));
  });
  it('the pod-proxy header (issue 14) counts only when Authorization is absent, and is checked the same way', () => {
    const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
    assert.equal(adminCredentialHeader(req({ [PROXY_AUTH_HEADER]: `Bearer ${token}` })), `Bearer ${token}`);
    // a wrong Authorization is not rescued by a right proxy header
    const both = adminCredentialHeader(req({ authorization: 'Bearer wrong', [PROXY_AUTH_HEADER]: `Bearer ${token}` }));
    assert.equal(both, 'Bearer wrong');
    assert.equal(decideAdminAuth(both, digest).ok, false);
    assert.equal(adminCredentialHeader(req({})), undefined);
    assert.equal(decideAdminAuth(adminCredentialHeader(req({ [PROXY_AUTH_HEADER]: `Bearer ${token}x` })), digest).ok, false);
  });
});

describe('SMTP AUTH hashes (contract 3)', () => {
  it('hash, parse and verify a PHC scrypt string', async () => {
    const phc = await hashPassword('s3cret', CHEAP, Buffer.alloc(16, 1));
    assert.match(phc, /^\$scrypt\$ln=4,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    assert.deepEqual(parsePhcScrypt(phc)?.params, CHEAP);
    assert.equal(await verifyPassword('s3cret', phc), true);
    assert.equal(await verifyPassword('s3cret ', phc), false);
    assert.equal(await verifyPassword('s3cret', 'not-a-phc'), false);
  });
  it('authenticate finds only users of the file', async () => {
    const users = [{ user: 'alice', phc: await hashPassword('pw', CHEAP), relay: true }];
    assert.equal((await authenticate(users, 'alice', 'pw'))?.user, 'alice');
    assert.equal(await authenticate(users, 'alice', 'no'), null);
    assert.equal(await authenticate(users, 'etrn', 'pw'), null);
  });
});

describe('per-client window counter (anvil-like)', () => {
  it('counts per key within a window and resets after it', () => {
    const w = new WindowCounter(10);
    assert.equal(w.hit('a', 0), 1);
    assert.equal(w.hit('a', 9999), 2);
    assert.equal(w.hit('b', 9999), 1);
    assert.equal(w.count('a', 10000), 0, 'a new window');
    assert.equal(w.hit('a', 10000), 1);
    w.clear('a');
    assert.equal(w.count('a', 10001), 0);
  });
  it('property: the count never exceeds the hits in the last window and the map stays bounded', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.integer({ min: 0, max: 5000 })), { maxLength: 200 }), (events) => {
      const w = new WindowCounter(1, 3);
      let now = 0;
      const hits: Record<string, number[]> = {};
      for (const [k, dt] of events) {
        now += dt;
        const n = w.hit(k, now);
        (hits[k] ??= []).push(now);
        const inLastWindow = hits[k].filter((t) => now - t < 1000).length;
        if (n < 1 || n > inLastWindow) return false;
      }
      return true;
    }));
  });
});

describe('outbound TLS policy (smtp_tls_security_level)', () => {
  const policy = { 'example.com': 'verify', '.example.net': 'encrypt' } as const;
  it('looks up the domain, then .parent entries, then the default', () => {
    assert.equal(tlsLevelFor('example.com', policy, 'may'), 'verify');
    assert.equal(tlsLevelFor('EXAMPLE.com.', policy, 'may'), 'verify');
    assert.equal(tlsLevelFor('mx.example.com', policy, 'may'), 'may');
    assert.equal(tlsLevelFor('example.net', policy, 'may'), 'may');
    assert.equal(tlsLevelFor('a.b.example.net', policy, 'may'), 'encrypt');
    assert.equal(levelForDomain(undefined, undefined), 'may');
  });
  it('never disables verification outside `may`', () => {
    for (const level of ['none', 'encrypt', 'verify'] as const) assert.equal(tlsConnectionOptions(level, 'mx.example.com').tls.rejectUnauthorized, true, level);
    assert.deepEqual(tlsConnectionOptions('may', 'mx.example.com.'), { opportunisticTLS: true, tls: { rejectUnauthorized: false, servername: 'mx.example.com' } });
    assert.equal(tlsConnectionOptions('verify', 'mx.example.com').requireTLS, true);
    assert.equal(tlsConnectionOptions('verify', 'mx.example.com').tls.checkServerIdentity, undefined, 'verify matches the name');
    assert.equal(tlsConnectionOptions('encrypt', 'mx.example.com').requireTLS, true);
    assert.equal(tlsConnectionOptions('none', 'mx.example.com').ignoreTLS, true);
  });
});
