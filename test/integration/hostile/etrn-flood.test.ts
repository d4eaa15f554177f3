// ETRN flood against a real three-node cluster (issue 10): many clients ETRN one domain at
// once on one node -> one fan-out (each peer gets one MAILQv2 ETRN); an ETRN at a peer right
// after -> that peer flushes locally, no second fan-out; past the per-domain rate (relayed
// ETRNs counted) -> 458. Addresses: 127.10.212.0/24.
import assert from 'node:assert/strict';
import net from 'node:net';
import { nodeTestAddress, commonPort } from '../node/helpers.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { sleep } from '../../support/processes.ts';
import { connectRaw } from './client.ts';

const A = (h: number) => nodeTestAddress(212, h);
const NODE_IPS = [A(11), A(12), A(13)];
const SLOW_PEER = A(14); // accepts MAILQv2 connections and never answers: a fan-out lasts the peer timeout
const DOMAIN = 'customer.test';
const PASSWORD = 'etrn-flood-pw';

describe('ETRN flood on a real cluster: one fan-out per domain, cluster-wide rate', function () {
  this.timeout(120000);
  const nodes: MailNode[] = [];
  let slow: net.Server;
  const held = new Set<net.Socket>();

  before(async () => {
    const mailqPort = await commonPort([...NODE_IPS, SLOW_PEER]);
    slow = net.createServer((s) => { held.add(s); s.on('close', () => held.delete(s)); s.on('error', () => {}); });
    await new Promise<void>((r) => slow.listen(mailqPort, SLOW_PEER, r));
    for (const [i, ip] of NODE_IPS.entries()) {
      nodes.push(await startMailNode({
        hostname: `node${i}.cluster.test`, address: ip, mailqPort,
        etrnCluster: [...NODE_IPS, SLOW_PEER].map((node) => ({ node, port: mailqPort, user: 'etrn', password: PASSWORD })),
        schedulerAuth: [{ user: 'etrn', password: PASSWORD, attrs: 'ETRN', acl: `[${A(0)}]/24` }],
        relayDomains: [DOMAIN],
        etrnDomainRateLimit: 3, etrnDomainRateTime: 60, etrnRelayedWindow: 5,
      }, { env: { MAILCLUSTER_ETRN_RATE_BURST: '1000', MAILCLUSTER_ETRN_PEER_TIMEOUT_MS: '1500' } }));
    }
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    for (const s of held) s.destroy();
    await new Promise<void>((r) => (slow ? slow.close(() => r()) : r()));
  });

  const etrn = async (node: MailNode, from: string, domain = DOMAIN): Promise<string> => {
    const [h, p] = node.smtp.split(':');
    const c = await connectRaw(h, Number(p), from);
    await c.command('EHLO site.test');
    const r = await c.command(`ETRN ${domain}`);
    c.close();
    return r.raw;
  };
  const relayedTo = (n: MailNode) => n.logs().filter((l) => l.msg === 'MAILQv2 ETRN flushed locally' && l.domain === DOMAIN).length;

  it('50 concurrent ETRNs at one node: every peer gets exactly one relayed ETRN', async () => {
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => etrn(nodes[0], A(100 + i))));
    assert.ok(replies.every((r) => r.startsWith('250-2.0.0 Attempting ETRN on cluster node')), replies[0]);
    await sleep(300);
    assert.equal(relayedTo(nodes[1]), 1);
    assert.equal(relayedTo(nodes[2]), 1);
    const joined = await nodes[0].metric('mailcluster_etrn_total', { source: 'smtp', result: 'joined' });
    assert.ok(joined >= 1, `some ETRNs joined the fan-out in flight (${joined})`);
  });

  it('an ETRN at a peer right after: local flush only, no second fan-out', async () => {
    const r = await etrn(nodes[1], A(200));
    assert.match(r, /^25[123] /, r);
    await sleep(300);
    assert.equal(relayedTo(nodes[0]), 0, 'node0 got no relayed ETRN from node1');
    assert.equal(relayedTo(nodes[2]), 1, 'node2 still only the first one');
  });

  it('past the per-domain rate, relayed ETRNs counted: 458 on every node', async () => {
    await sleep(5200); // past the relayed window
    // node0 counted 1 fan-out, node1 and node2 one relayed each: two more fan-outs from node2
    // (its own count) reach the limit (3) on every node
    assert.match(await etrn(nodes[2], A(201)), /^250-/);
    assert.match(await etrn(nodes[2], A(202)), /^250-/);
    for (const n of nodes) {
      const r = await etrn(n, A(203));
      assert.match(r, /^458 4\.7\.0 .*too many ETRN requests for this domain/, `${n.config.hostname}: ${r}`);
    }
  });
});
