// The mail-node harness writes a node's config dir exactly per DESIGN.md's contract,
// both as plain files and kubelet-style (`..data` symlink swapped atomically).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { harnessAddress } from '../../support/addresses.ts';
import { metricValue, parseLogLines, renderNodeConfig, startMailNode } from '../../support/mail-node.ts';

describe('mail-node harness: config dir', () => {
  it('renders smtpserver.conf, zmailer.conf and scheduler.auth per the contract', () => {
    const files = renderNodeConfig({
      hostname: 'node-0.cluster.test',
      address: '127.50.14.1',
      smtpPort: 2525,
      mailqPort: 1174,
      adminPort: 8025,
      postoffice: '/var/spool/mailcluster',
      maxsize: 1048576,
      etrnCluster: [
        { node: '127.50.14.1', port: 1174, user: 'etrn', password: 's3cret' },
        { node: '127.50.14.2', port: 1174, user: 'etrn', password: '@/etc/mailcluster/etrn-password' },
      ],
      relayDomains: ['customer.test'],
      relayNetworks: ['127.50.14.0/24'],
      proxyProtocol: ['127.50.14.100/32'],
      dnsServer: '127.50.14.53:5353',
      deliveryPort: 2526,
      retryInterval: 1,
      maxRetryInterval: 4,
      queueLifetime: 60,
      deliveryConcurrency: 5,
      selfAddresses: ['127.50.14.100', '[127.50.14.1]', 'smtp.isp.test'],
      schedulerAuth: [{ user: 'etrn', password: 's3cret', attrs: 'ETRN', acl: '[127.0.0.0]/8' }],
    });
    assert.deepEqual(files['smtpserver.conf'].split('\n').filter((l) => l.startsWith('PARAM')), [
      'PARAM hostname node-0.cluster.test',
      'PARAM BindSmtp 127.50.14.1 2525',
      'PARAM BindMailq 127.50.14.1 1174',
      'PARAM BindAdmin 127.50.14.1 8025',
      'PARAM maxsize 1048576',
      'PARAM etrn-cluster 127.50.14.1/1174 etrn s3cret',
      'PARAM etrn-cluster 127.50.14.2/1174 etrn @/etc/mailcluster/etrn-password',
      'PARAM relay-domain customer.test',
      'PARAM relay-network 127.50.14.0/24',
      'PARAM proxy-protocol 127.50.14.100/32',
      'PARAM dns-server 127.50.14.53:5353',
      'PARAM smtp-port 2526',
      'PARAM retry-interval 1',
      'PARAM max-retry-interval 4',
      'PARAM queue-lifetime 60',
      'PARAM delivery-concurrency 5',
      // SHA-256 of the harness's default admin token `test-admin-token-node-0.cluster.test`
      `PARAM admin-token-sha256 ${createHash('sha256').update('test-admin-token-node-0.cluster.test').digest('hex')}`,
      'PARAM smtp-greet-pause 0',
      'PARAM etrn-domain-rate-limit 0',
      'PARAM etrn-relayed-window 0',
    ]);
    assert.match(files['zmailer.conf'], /^SELFADDRESSES=127\.50\.14\.100,\[127\.50\.14\.1\],smtp\.isp\.test$/m);
    assert.match(files['zmailer.conf'], /^POSTOFFICE=\/var\/spool\/mailcluster$/m);
    assert.equal(files['scheduler.auth'], 'etrn:s3cret:ETRN:[127.0.0.0]/8\n');
    assert.throws(() => renderNodeConfig({ hostname: 'a b', address: '127.0.0.1', smtpPort: 1, mailqPort: 2, adminPort: 3, postoffice: '/x' }), /whitespace/);
  });

  it('writes the dir kubelet-style and swaps ..data atomically on reload', async () => {
    const node = await startMailNode({ hostname: 'n.test', address: harnessAddress(14, 1), relayDomains: ['a.test'] }, { start: false, kubeletStyle: true });
    try {
      const link = join(node.configDir, 'smtpserver.conf');
      assert.ok(lstatSync(link).isSymbolicLink());
      assert.equal(readlinkSync(link), join('..data', 'smtpserver.conf'));
      const before = readlinkSync(join(node.configDir, '..data'));
      assert.match(readFileSync(link, 'utf8'), /PARAM relay-domain a\.test/);
      assert.match(readFileSync(join(node.configDir, 'zmailer.conf'), 'utf8'), new RegExp(`POSTOFFICE=${node.dir}/spool`));
      assert.ok(existsSync(join(node.dir, 'spool')));

      await node.reload({ relayDomains: ['b.test'] });
      const after = readlinkSync(join(node.configDir, '..data'));
      assert.notEqual(after, before);
      assert.match(readFileSync(link, 'utf8'), /PARAM relay-domain b\.test/);
      // The old timestamped dir is gone; exactly one data dir remains.
      assert.deepEqual(readdirSync(node.configDir).filter((f) => f.startsWith('..') && f !== '..data'), [after]);
    } finally {
      await node.close();
    }
    assert.equal(existsSync(node.dir), false);
  });

  it('reads metrics and pino lines', () => {
    const text = '# HELP x\nmailcluster_delivered_total{domain="a"} 3\nmailcluster_delivered_total{domain="b"} 4\nmailcluster_queue_size 7\n';
    assert.equal(metricValue(text, 'mailcluster_delivered_total'), 7);
    assert.equal(metricValue(text, 'mailcluster_delivered_total', { domain: 'b' }), 4);
    assert.equal(metricValue(text, 'mailcluster_queue_size'), 7);
    assert.equal(metricValue(text, 'absent'), 0);
    assert.deepEqual(parseLogLines('{"msg":"a"}\nnot json\n{"msg":"b"}\n{"torn'), [{ msg: 'a' }, { msg: 'b' }]);
  });
});
