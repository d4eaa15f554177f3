// Pure parts of `mailcluster queue` and `kubectl mailcluster` (issue 14): argument parsing,
// the admin request per subcommand, node pods and status rows, the pod-proxy URL, SMTP
// reply framing.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseArgs, queueRequest, UsageError } from '../../../ops/src/queue-commands.ts';
import { formatStatus, mergeSummaries, nodePods, oldestSeconds, statusRow } from '../../../ops/src/cluster-view.ts';
import { summarizeQueue } from '../../../node-image/src/admin/queue-view.ts';
import type { QueuedMessageInfo } from '../../../node-image/src/delivery/queue.ts';
import { podProxyUrl } from '../../../ops/src/admin-client.ts';
import { takeReply } from '../../../ops/src/etrn-client.ts';
import { renderQueueAnswer } from '../../../ops/src/queue-cli.ts';

const booleans = new Set(['held', 'not-held', 'all', 'dsn', 'wait']);
const aliases = { o: 'output', n: 'namespace', c: 'cluster' };

describe('ops commands (pure)', () => {
  it('parses flags in every spelling; refuses values on booleans and missing values', () => {
    assert.deepEqual(parseArgs(['-n', 'mail', 'queue', 'hold', 'A', 'B', '--dsn', '-o=json', '--domain', 'x.test'], booleans, aliases),
      { positional: ['queue', 'hold', 'A', 'B'], flags: { namespace: 'mail', dsn: true, output: 'json', domain: 'x.test' } });
    assert.deepEqual(parseArgs(['--', '--all'], booleans, aliases), { positional: ['--all'], flags: {} });
    assert.throws(() => parseArgs(['--dsn=yes'], booleans), UsageError);
    assert.throws(() => parseArgs(['--domain'], booleans), UsageError);
    assert.throws(() => parseArgs(['-xyz'], booleans), UsageError);
  });

  it('maps each queue subcommand to its admin request', () => {
    assert.deepEqual(queueRequest('list', [], { domain: '@cust.test', held: true, limit: '5' }), { method: 'GET', path: '/queue/messages?domain=%40cust.test&held=true&limit=5' });
    assert.deepEqual(queueRequest('list', [], {}), { method: 'GET', path: '/queue/messages' });
    assert.deepEqual(queueRequest('show', ['ABC'], {}), { method: 'GET', path: '/queue/message?id=ABC' });
    assert.deepEqual(queueRequest('summary', [], {}), { method: 'GET', path: '/queue/summary' });
    assert.deepEqual(queueRequest('hold', ['A', 'B'], {}), { method: 'POST', path: '/queue/hold', body: { ids: ['A', 'B'] } });
    assert.deepEqual(queueRequest('delete', ['A'], { dsn: true }), { method: 'POST', path: '/queue/delete', body: { ids: ['A'], dsn: true } });
    assert.deepEqual(queueRequest('delete', ['A'], {}), { method: 'POST', path: '/queue/delete', body: { ids: ['A'], dsn: false } });
    assert.deepEqual(queueRequest('release', [], { all: true, domain: 'x.test', 'not-held': true }), { method: 'POST', path: '/queue/release', body: { all: true, domain: 'x.test', held: false } });
  });

  it('refuses ambiguous or dangerous requests: no selection, ids with --all, --dsn off delete, unknown ops', () => {
    for (const [op, ids, flags] of [
      ['hold', [], {}], ['delete', [], { dsn: true }], ['hold', ['A'], { all: true }], ['retry', ['A'], { domain: 'x' }],
      ['hold', ['A'], { dsn: true }], ['show', [], {}], ['show', ['A', 'B'], {}], ['list', ['A'], {}], ['purge', [], {}],
      ['list', [], { held: true, 'not-held': true }],
    ] as Array<[string, string[], Record<string, string | true>]>) {
      assert.throws(() => queueRequest(op, ids, flags), UsageError, `${op} ${ids} ${JSON.stringify(flags)}`);
    }
  });

  it('a mutating request without ids always carries all: true (never an empty body)', () => {
    fc.assert(fc.property(fc.constantFrom('hold', 'release', 'retry', 'delete'), fc.array(fc.stringMatching(/^[A-Z0-9]{1,8}$/), { maxLength: 3 }),
      fc.record({ all: fc.constant(true as const), domain: fc.constantFrom('a.test', '@b.test') }, { requiredKeys: [] }), (op, ids, flags) => {
        let req;
        try { req = queueRequest(op, ids, flags); } catch (e) { assert.ok(e instanceof UsageError); return; }
        assert.equal(req.method, 'POST');
        assert.ok(Array.isArray(req.body?.ids) ? (req.body!.ids as string[]).length > 0 : req.body?.all === true);
      }));
  });

  it('node pods sorted by index with role, readiness, IP; status rows and table', () => {
    const pod = (name: string, index: number, role: string, ready: boolean, ip?: string) => ({
      metadata: { name, labels: { 'app.kubernetes.io/name': 'mailcluster-node', 'mailcluster.io/index': String(index), 'mailcluster.io/role': role } },
      status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
    const pods = nodePods([pod('mc-2', 2, 'draining', false, '127.40.0.3'), pod('mc-0', 0, 'serving', true, '127.40.0.1'), { metadata: { name: 'other', labels: {} } }]);
    assert.deepEqual(pods.map((p) => [p.name, p.role, p.ready, p.podIP]), [['mc-0', 'serving', true, '127.40.0.1'], ['mc-2', 'draining', false, '127.40.0.3']]);
    const now = Date.parse('2026-01-01T01:00:00Z');
    assert.equal(oldestSeconds({ oldest: '2026-01-01T00:00:00Z' }, now), 3600);
    assert.equal(oldestSeconds({ oldestSeconds: 7, oldest: '2026-01-01T00:00:00Z' }, now), 7);
    const rows = [statusRow(pods[0], { total: 3, held: 1, deferred: 2, oldestSeconds: 90, draining: false }, null, now), statusRow(pods[1], null, 'connect ECONNREFUSED', now)];
    const text = formatStatus('mc', rows);
    assert.match(text, /^MailCluster mc: 2 node\(s\), 3 message\(s\) queued$/m);
    assert.match(text, /^mc-0\s+serving\s+Running\s+true\s+127\.40\.0\.1\s+3\s+1\s+2\s+1m30s\s+serving$/m);
    assert.match(text, /^mc-2\s+draining\s+Running\s+false\s+127\.40\.0\.3\s+-\s+-\s+-\s+-\s+error: connect ECONNREFUSED$/m);
  });

  it('pod proxy URL; SMTP replies framed (multi-line, CRLF)', () => {
    assert.equal(podProxyUrl('https://127.0.0.1:6443/', 'mail', 'relay-0'), 'https://127.0.0.1:6443/api/v1/namespaces/mail/pods/relay-0:8025/proxy');
    assert.equal(takeReply('250-a\r\n250-b\r\n'), null);
    assert.deepEqual(takeReply('250-a\r\n250 b\r\n220 next'), { reply: '250-a\n250 b', rest: '220 next' });
  });

  it('renders operation answers per id, with the node', () => {
    const text = renderQueueAnswer('hold', { results: [{ id: 'A', ok: true, message: { state: 'held' } }, { id: 'B', ok: false, code: 'not-found', error: 'message B is not in the queue' }] }, 'mc-0');
    assert.equal(text, 'mc-0: A: hold ok (held)\nmc-0: B: not-found: message B is not in the queue\n');
  });

  it('the cluster summary of per-node summaries equals the summary of all their messages', () => {
    const NOW = 1_800_000_000_000;
    const arbMsg = fc.record({
      id: fc.uuid(), sender: fc.constant('s@x.test'), size: fc.integer({ min: 1, max: 1000 }),
      recipients: fc.array(fc.constantFrom('a@d1.test', 'b@d2.test', 'c@d3.test'), { minLength: 1, maxLength: 3 }),
      receivedAt: fc.integer({ min: NOW - 86400_000, max: NOW }), attempts: fc.integer({ min: 0, max: 3 }), nextAttempt: fc.constant(NOW),
      inFlight: fc.boolean(), held: fc.boolean(),
    }) as fc.Arbitrary<QueuedMessageInfo>;
    fc.assert(fc.property(fc.array(fc.array(arbMsg, { maxLength: 8 }), { minLength: 1, maxLength: 4 }), (nodes) => {
      const merged = mergeSummaries(nodes.map((n) => summarizeQueue(n, NOW)));
      assert.deepEqual(merged, summarizeQueue(nodes.flat(), NOW));
    }));
  });
});
