// The background GET /queue prober (queue-prober.ts) against real HTTP servers on 127.0.0.1:
// a reconcile reading answers never waits; probes across all clusters stay within the bound;
// a node that never answers costs one timeout, not a worker; an answer belongs to its pod UID
// and carries when it was asked; news re-queues the cluster, a repeated non-drained answer not.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { QueueProber, type ProbeTarget } from '../../../operator/src/controller/queue-prober.ts';
import { waitUntil } from '../../support/processes.ts';

interface Node { server: Server; url: string; inFlight: number; maxInFlight: number; requests: number; answer: () => unknown; hold: boolean; held: ServerResponse[] }

async function node(answer: () => unknown = () => ({ total: 2, draining: true, drained: false })): Promise<Node> {
  const n = { inFlight: 0, maxInFlight: 0, requests: 0, answer, hold: false, held: [] } as unknown as Node;
  n.server = createServer((req: IncomingMessage, res: ServerResponse) => {
    n.requests++;
    n.inFlight++;
    n.maxInFlight = Math.max(n.maxInFlight, n.inFlight);
    res.on('close', () => { n.inFlight--; });
    if (n.hold) { n.held.push(res); return; }
    setTimeout(() => { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify(n.answer())); }, 20);
  });
  await new Promise<void>((r) => n.server.listen(0, '127.0.0.1', () => r()));
  n.url = `http://127.0.0.1:${(n.server.address() as AddressInfo).port}`;
  return n;
}
const close = (n: Node): void => { for (const r of n.held) r.destroy(); n.held.length = 0; n.server.closeAllConnections(); n.server.close(); };
const target = (n: Node, pod: string, uid = `uid-${pod}`, restarts = 0): ProbeTarget => ({ pod, uid, baseUrl: n.url, restarts });

describe('operator queue prober (GET /queue in the background)', () => {
  it('returns at once, keeps probes across all clusters within the bound, and re-queues each cluster on its first answer', async () => {
    const n = await node();
    const queued: string[] = [];
    const prober = new QueueProber({ concurrency: 4, refreshMs: 60_000, onAnswer: (c) => queued.push(c) });
    try {
      const clusters = Array.from({ length: 6 }, (_, c) => `ns/c${c}`);
      n.hold = true; // the node does not answer until released
      for (const c of clusters) {
        const first = prober.answers(c, 'tok', [0, 1, 2].map((i) => target(n, `${c}-${i}`.replace('ns/', ''))));
        assert.deepEqual(first, {}, 'nothing known yet, and nothing waited for: answers() returns while every probe hangs');
      }
      assert.equal(prober.running, 4);
      assert.equal(prober.pending, 14);
      await waitUntil('the node holds 4 requests', () => n.inFlight === 4, { timeoutMs: 5000, intervalMs: 10 });
      assert.deepEqual(prober.answers('ns/c0', 'tok', [0, 1, 2].map((i) => target(n, `c0-${i}`))), {}, 'a reconcile meanwhile reads what is known, at once');
      n.hold = false;
      for (const res of n.held.splice(0)) { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify(n.answer())); }
      await waitUntil('every pod answered', () => prober.running + prober.pending === 0 && n.requests === 18, { timeoutMs: 10_000, intervalMs: 10 });
      assert.equal(n.maxInFlight, 4, 'never more than the bound in flight');
      assert.deepEqual([...new Set(queued)].sort(), clusters);
      const a = prober.answers('ns/c0', 'tok', [0, 1, 2].map((i) => target(n, `c0-${i}`)));
      assert.deepEqual(Object.keys(a).sort(), ['c0-0', 'c0-1', 'c0-2']);
      const one = a['c0-0'] as { total: number; uid: string; askedAt: number; restarts: number };
      assert.equal(one.total, 2);
      assert.equal(one.uid, 'uid-c0-0');
      assert.equal(one.restarts, 0);
      assert.ok(Math.abs(Date.now() - one.askedAt) < 10_000);
      assert.equal(n.requests, 18, 'a fresh answer is not asked again');
    } finally { prober.stop(); close(n); }
  });

  it('a node that never answers costs one timeout; the answer is an error for that pod, and others are not held up', async () => {
    const stuck = await node();
    stuck.hold = true;
    const fine = await node(() => ({ total: 0, draining: true, drained: true }));
    const queued: string[] = [];
    const prober = new QueueProber({ concurrency: 1, timeoutMs: 300, refreshMs: 60_000, onAnswer: (c) => queued.push(c) });
    try {
      prober.answers('ns/a', 'tok', [target(stuck, 'a-0')]);
      prober.answers('ns/b', 'tok', [target(fine, 'b-0')]);
      await waitUntil('both answered', () => queued.length === 2, { timeoutMs: 5000, intervalMs: 10 });
      assert.deepEqual(queued, ['ns/a', 'ns/b']);
      const a = prober.answers('ns/a', 'tok', [target(stuck, 'a-0')])['a-0'];
      assert.ok(a && 'error' in a && a.uid === 'uid-a-0', JSON.stringify(a));
      const b = prober.answers('ns/b', 'tok', [target(fine, 'b-0')])['b-0'];
      assert.ok(b && 'total' in b && b.drained === true);
    } finally { prober.stop(); close(stuck); close(fine); }
  });

  it('an answer belongs to a pod UID: a new pod of the same name starts with none; news re-queues, a repeated non-drained answer does not', async () => {
    let answer: unknown = { total: 3, draining: true, drained: false };
    const n = await node(() => answer);
    const queued: string[] = [];
    let now = 1_000_000;
    const prober = new QueueProber({ refreshMs: 500, now: () => now, onAnswer: (c) => queued.push(c) });
    try {
      prober.answers('ns/a', 'tok', [target(n, 'a-0', 'u1')]);
      await waitUntil('answered', () => queued.length === 1, { timeoutMs: 5000, intervalMs: 10 });
      now += 600; // old enough to ask again; the same answer is no news
      prober.answers('ns/a', 'tok', [target(n, 'a-0', 'u1')]);
      await waitUntil('asked again', () => n.requests === 2 && prober.running === 0, { timeoutMs: 5000, intervalMs: 10 });
      assert.equal(queued.length, 1);
      answer = { total: 0, draining: true, drained: true };
      now += 600;
      prober.answers('ns/a', 'tok', [target(n, 'a-0', 'u1')]);
      await waitUntil('drained news', () => queued.length === 2, { timeoutMs: 5000, intervalMs: 10 });
      now += 600;
      prober.answers('ns/a', 'tok', [target(n, 'a-0', 'u1')]);
      await waitUntil('a drained answer re-queues every time (it is worth acting on while fresh)', () => queued.length === 3, { timeoutMs: 5000, intervalMs: 10 });
      // The pod was replaced (same name, new UID): the old answer is not shown for it.
      assert.deepEqual(prober.answers('ns/a', 'tok', [target(n, 'a-0', 'u2')]), {});
      await waitUntil('the new pod answered', () => queued.length === 4, { timeoutMs: 5000, intervalMs: 10 });
      const fresh = prober.answers('ns/a', 'tok', [target(n, 'a-0', 'u2', 1)])['a-0'];
      assert.ok(fresh && 'total' in fresh && fresh.uid === 'u2');
      prober.forget('ns/a');
      assert.deepEqual(prober.answers('ns/a', 'tok', []), {});
    } finally { prober.stop(); close(n); }
  });
});
