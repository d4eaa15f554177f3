import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bindAddress, loadConfigDir, resolveUnderRoot } from '../../../node-image/src/config/load.ts';
import { parseSchedulerAuth, parseSmtpserverConf, parseZmailerConf } from '../../../node-image/src/config/parse.ts';
import { ConfigError } from '../../../node-image/src/config/types.ts';

function configError(fn: () => unknown): ConfigError {
  try { fn(); } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('node config: smtpserver.conf', () => {
  it('reads every contract PARAM, comments and the extensions', () => {
    const s = parseSmtpserverConf([
      '# a comment',
      'PARAM hostname smtp.isp.example',
      'PARAM BindSmtp 0.0.0.0 2525   # trailing comment',
      'PARAM BindMailq 0.0.0.0 1174',
      'PARAM BindAdmin 127.0.0.1',
      'PARAM maxsize 1048576',
      'PARAM tls-cert-file /etc/mailcluster-tls/tls.crt',
      'PARAM tls-key-file /etc/mailcluster-tls/tls.key',
      'PARAM etrn-cluster 10.0.0.5/1174 etrn @/etc/mailcluster/etrn-password',
      'PARAM etrn-cluster 10.0.0.6 etrn s3cret',
      'PARAM relay-domain Customer.Example',
      'PARAM relay-network 192.168.0.0/16',
      'PARAM relay-network [10.1.0.0]/16',
      'PARAM proxy-protocol 10.96.0.0/12',
      'PARAM dns-server 127.0.0.53:5353',
      'PARAM smtp-port 2526',
      'PARAM retry-interval 0.5',
      'PARAM max-retry-interval 10',
      'PARAM queue-lifetime 3600',
      'PARAM max-received-headers 20',
      'PARAM max-recipients 50',
      'PARAM max-connections 200',
      'PARAM delivery-concurrency 8',
      '',
    ].join('\n'), 'smtpserver.conf');
    assert.equal(s.hostname, 'smtp.isp.example');
    assert.deepEqual(s.bindSmtp, { address: '0.0.0.0', port: 2525 });
    assert.equal(s.bindAdmin?.address, '127.0.0.1');
    assert.ok(Number.isNaN(s.bindAdmin?.port));
    assert.equal(s.maxSize, 1048576);
    assert.equal(s.tlsCertFile, '/etc/mailcluster-tls/tls.crt');
    assert.deepEqual(s.etrnCluster.map((p) => [p.host, p.port, p.user, p.password, p.passwordFile]), [
      ['10.0.0.5', 1174, 'etrn', '', '/etc/mailcluster/etrn-password'],
      ['10.0.0.6', 174, 'etrn', 's3cret', undefined],
    ]);
    assert.deepEqual(s.relayDomains, ['customer.example']);
    assert.deepEqual(s.relayNetworks, ['192.168.0.0/16', '10.1.0.0/16']);
    assert.deepEqual(s.proxyProtocol, ['10.96.0.0/12']);
    assert.deepEqual(s.dnsServers, ['127.0.0.53:5353']);
    assert.equal(s.smtpPort, 2526);
    assert.equal(s.retryInterval, 0.5);
    assert.equal(s.deliveryConcurrency, 8);
  });

  it('names file and line for an unknown PARAM, a bad value, a non-PARAM line', () => {
    let e = configError(() => parseSmtpserverConf('PARAM hostname a.example\n\nPARAM frobnicate 1\n', '/etc/mailcluster/smtpserver.conf'));
    assert.equal(e.file, '/etc/mailcluster/smtpserver.conf');
    assert.equal(e.line, 3);
    assert.match(e.message, /^\/etc\/mailcluster\/smtpserver\.conf:3: unknown PARAM "frobnicate"/);
    e = configError(() => parseSmtpserverConf('PARAM relay-network 10.0.0.0/33\n', 'f'));
    assert.match(e.message, /^f:1: bad prefix length/);
    e = configError(() => parseSmtpserverConf('# x\nhello world\n', 'f'));
    assert.equal(e.line, 2);
    e = configError(() => parseSmtpserverConf('PARAM BindSmtp 0.0.0.0 99999\n', 'f'));
    assert.match(e.message, /f:1: bad port/);
    e = configError(() => parseSmtpserverConf('PARAM maxsize -5\n', 'f'));
    assert.match(e.message, /f:1: maxsize must be a positive integer/);
    e = configError(() => parseSmtpserverConf('PARAM etrn-cluster 10.0.0.1/1174 etrn\n', 'f'));
    assert.match(e.message, /f:1: PARAM etrn-cluster needs/);
    e = configError(() => parseSmtpserverConf('PARAM tls-cert-file /a.crt\n', 'f'));
    assert.match(e.message, /f:1: tls-cert-file and tls-key-file must be set together/);
    e = configError(() => parseSmtpserverConf('PARAM dns-server nameserver.example\n', 'f'));
    assert.match(e.message, /f:1: bad dns-server/);
  });
});

describe('node config: zmailer.conf and scheduler.auth', () => {
  it('reads SELFADDRESSES (names and literals) and POSTOFFICE, ignores other keys', () => {
    const z = parseZmailerConf('# c\nMAILBIN=/usr/lib/zmailer\nSELFADDRESSES=10.0.0.5, [10.0.0.6],[IPv6:2001:db8::1],smtp.isp.example\nPOSTOFFICE="/var/spool/mailcluster"\n', 'zmailer.conf');
    assert.deepEqual(z.selfAddresses, ['10.0.0.5', '[10.0.0.6]', '[IPv6:2001:db8::1]', 'smtp.isp.example']);
    assert.equal(z.postOffice, '/var/spool/mailcluster');
  });

  it('names file and line for bad zmailer.conf lines', () => {
    let e = configError(() => parseZmailerConf('A=1\nnot a key value\n', 'zmailer.conf'));
    assert.equal(e.line, 2);
    e = configError(() => parseZmailerConf('SELFADDRESSES=10.0.0.5,[not-an-ip]\n', 'zmailer.conf'));
    assert.match(e.message, /^zmailer\.conf:1: bad SELFADDRESSES entry "\[not-an-ip\]"/);
    e = configError(() => parseZmailerConf('POSTOFFICE=relative/dir\n', 'zmailer.conf'));
    assert.match(e.message, /zmailer\.conf:1: POSTOFFICE must be an absolute path/);
  });

  it('reads scheduler.auth users, rights and ACLs', () => {
    const a = parseSchedulerAuth('# users\netrn:s3cret:ETRN:[127.0.0.0]/8\nadmin:pw:ETRN,QUERY:[0.0.0.0]/0 [10.0.0.0]/8\n', 'scheduler.auth');
    assert.deepEqual(a, [
      { user: 'etrn', password: 's3cret', rights: ['ETRN'], acls: ['127.0.0.0/8'] },
      { user: 'admin', password: 'pw', rights: ['ETRN', 'QUERY'], acls: ['0.0.0.0/0', '10.0.0.0/8'] },
    ]);
    const e = configError(() => parseSchedulerAuth('etrn:s3cret:ETRN:[127.0.0.0]/8\nbroken-line\n', 'scheduler.auth'));
    assert.match(e.message, /^scheduler\.auth:2: expected user:password:ATTRS:IP-ACLs/);
    const e2 = configError(() => parseSchedulerAuth('etrn:s3cret:ETRN:[127.0.0.300]/8\n', 'scheduler.auth'));
    assert.match(e2.message, /^scheduler\.auth:1: bad IP ACL/);
  });
});

describe('node config: loading a directory', () => {
  let root: string;
  beforeEach(() => { root = mkdtempSync(join(tmpdir(), 'mc-config-')); });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('resolves absolute paths under MAILCLUSTER_ROOT, reads @path passwords, binds MAILCLUSTER_BIND_ADDRESS', () => {
    mkdirSync(join(root, 'etc/mailcluster'), { recursive: true });
    writeFileSync(join(root, 'etc/mailcluster/smtpserver.conf'), 'PARAM hostname n0.example\nPARAM BindSmtp 0.0.0.0 2525\nPARAM BindAdmin 127.0.0.9 8025\nPARAM etrn-cluster 10.0.0.5/1174 etrn @/etc/mailcluster/etrn-password\n');
    writeFileSync(join(root, 'etc/mailcluster/zmailer.conf'), 'SELFADDRESSES=10.0.0.5\nPOSTOFFICE=/var/spool/mailcluster\n');
    writeFileSync(join(root, 'etc/mailcluster/etrn-password'), 'pa55\n');
    const env = { MAILCLUSTER_ROOT: root, MAILCLUSTER_BIND_ADDRESS: '127.30.0.7' };
    const { config } = loadConfigDir('/etc/mailcluster', env);
    assert.deepEqual(config.etrnCluster, [{ host: '10.0.0.5', port: 1174, user: 'etrn', password: 'pa55' }]);
    assert.deepEqual(config.bindSmtp, { address: '127.30.0.7', port: 2525 });
    assert.deepEqual(config.bindMailq, { address: '127.30.0.7', port: 174 });
    assert.deepEqual(config.bindAdmin, { address: '127.0.0.9', port: 8025 });
    assert.equal(config.postOffice, join(root, 'var/spool/mailcluster'));
    assert.equal(config.outboundAddress, '127.30.0.7');
    assert.deepEqual(config.schedulerAuth, []);
    assert.equal(config.retryInterval, 60);
    assert.equal(config.maxRetryInterval, 3600);
    assert.equal(config.queueLifetime, 432000);
    assert.equal(config.maxReceivedHeaders, 30);
    assert.equal(config.maxRecipients, 100);
    assert.equal(config.maxConnections, 1000);
    assert.equal(config.deliveryConcurrency, 20);
    assert.equal(resolveUnderRoot('relative', env), 'relative');
    assert.deepEqual(bindAddress(undefined, 25, {}), { address: '0.0.0.0', port: 25 });
  });

  it('a missing @path password file or TLS file is an error naming the smtpserver.conf line', () => {
    writeFileSync(join(root, 'smtpserver.conf'), 'PARAM hostname n0.example\nPARAM etrn-cluster 10.0.0.5 etrn @/nope/pw\n');
    writeFileSync(join(root, 'zmailer.conf'), 'POSTOFFICE=/tmp/x\n');
    let e = configError(() => loadConfigDir(root, {}));
    assert.match(e.message, /smtpserver\.conf:2: etrn-cluster password file \/nope\/pw: ENOENT/);
    writeFileSync(join(root, 'smtpserver.conf'), 'PARAM hostname n0.example\nPARAM tls-cert-file /nope/tls.crt\nPARAM tls-key-file /nope/tls.key\n');
    e = configError(() => loadConfigDir(root, {}));
    assert.match(e.message, /smtpserver\.conf:2: TLS certificate\/key/);
    rmSync(join(root, 'zmailer.conf'));
    e = configError(() => loadConfigDir(root, {}));
    assert.match(e.message, /zmailer\.conf: file not found/);
  });
});
