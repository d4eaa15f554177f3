// Leader election under a hung API connection, on the real control plane: the leader talks to
// the API server through a TCP proxy on 127.44.90.1 that stops forwarding (connections stay
// open, bytes go nowhere: a renew call that never returns). The leader must stop writing
// (stillLeading() false, onStoppedLeading called) at its renew deadline, while the call still
// hangs, and strictly before the other replica — talking to the API server directly — takes
// the Lease over. Every Lease call has a timeout, so the hung leader keeps trying (new
// connections reach the proxy) instead of waiting forever.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { LeaderElector } from '../../../operator/src/controller/leader.ts';
import { sharedLocalCluster } from '../../support/local-cluster.ts';
import { waitUntil } from '../../support/processes.ts';

const PROXY_ADDRESS = '127.44.90.1'; // this suite's own sub-range: 127.44.90.0/24

/** A TCP proxy that can freeze: from then on it forwards nothing, in either direction. */
async function startFreezableProxy(target: { host: string; port: number }) {
  let frozen = false;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (frozen) return; // accepted, never answered
    const upstream = connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('data', (b) => { if (!frozen) upstream.write(b); });
    upstream.on('data', (b) => { if (!frozen) client.write(b); });
    client.on('end', () => { if (!frozen) upstream.end(); });
    upstream.on('end', () => { if (!frozen) client.end(); });
  });
  await new Promise<void>((resolve) => server.listen(0, PROXY_ADDRESS, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://${PROXY_ADDRESS}:${port}`,
    freeze: () => { frozen = true; },
    connections: () => connections,
    stop: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

describe('operator leader election: a hung renew fences the writer before a successor takes over (real API server)', function () {
  this.timeout(120_000);

  it('stops writing at the renew deadline while the call hangs, strictly before the other replica leads', async () => {
    const cluster = await sharedLocalCluster();
    const api = new URL(cluster.server);
    const proxy = await startFreezableProxy({ host: api.hostname, port: Number(api.port) });
    const viaProxy = new KubeConfig();
    viaProxy.loadFromString(JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'proxy',
      clusters: [{ name: 'proxy', cluster: { server: proxy.url, 'certificate-authority-data': caData(cluster.kubeConfig), 'tls-server-name': api.hostname } }],
      users: [{ name: 'u', user: userOf(cluster.kubeConfig) }],
      contexts: [{ name: 'proxy', context: { cluster: 'proxy', user: 'u' } }],
    }));
    const log = pino({ level: process.env.LEADER_TEST_LOG ?? 'silent' });
    const lease = { namespace: 'default', name: `fence-${randomBytes(3).toString('hex')}` };
    const timing = { leaseDurationMs: 4000, renewDeadlineMs: 2500, retryPeriodMs: 400 };
    const t = { aStopped: Number.NaN, bStarted: Number.NaN, frozen: Number.NaN };
    const a = new LeaderElector({
      coordination: viaProxy.makeApiClient(CoordinationV1Api), ...lease, identity: 'replica-a', ...timing, log,
      onStartedLeading: () => undefined, onStoppedLeading: () => { t.aStopped = performance.now(); },
    });
    const b = new LeaderElector({
      coordination: cluster.kubeConfig.makeApiClient(CoordinationV1Api), ...lease, identity: 'replica-b', ...timing, log,
      onStartedLeading: () => { t.bStarted = performance.now(); }, onStoppedLeading: () => undefined,
    });
    // The writer: what the controller does before every write. A ledger of allowed writes.
    const aWrites: number[] = [];
    const writer = setInterval(() => { if (a.stillLeading()) aWrites.push(performance.now()); }, 20);
    try {
      a.start();
      await waitUntil('replica A leading through the proxy', async () => a.stillLeading(), { timeoutMs: 20_000, intervalMs: 50 });
      b.start();
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(b.stillLeading(), false, 'B waits while A renews');
      assert.ok(Number.isNaN(t.bStarted));

      assert.equal(a.stillLeading(), true, 'A kept renewing through the proxy (past one renew deadline)');
      const before = proxy.connections();
      proxy.freeze();
      t.frozen = performance.now();
      await waitUntil('replica B takes the Lease over', async () => b.stillLeading(), { timeoutMs: 30_000, intervalMs: 20 });

      const lastWrite = aWrites.at(-1)!;
      console.log(`      frozen -> A stops writing ${Math.round(t.aStopped - t.frozen)} ms, -> B leads ${Math.round(t.bStarted - t.frozen)} ms; margin ${Math.round(t.bStarted - t.aStopped)} ms; A's last write ${Math.round(lastWrite - t.frozen)} ms after the freeze`);
      assert.ok(t.aStopped < t.bStarted, 'A stepped down before B started leading');
      assert.ok(lastWrite < t.bStarted, 'no write of A after B leads');
      assert.ok(lastWrite <= t.aStopped + 25, 'A\'s writes stop at its step-down');
      assert.ok(t.aStopped - t.frozen <= timing.renewDeadlineMs + 300, `A stops within its renew deadline of the freeze (${Math.round(t.aStopped - t.frozen)} ms)`);
      assert.ok(t.aStopped - t.frozen >= timing.renewDeadlineMs - timing.retryPeriodMs - 300, 'A renewed up to the freeze: it stops at the deadline of its last renewal, not earlier');
      assert.equal(a.stillLeading(), false);
      assert.ok(proxy.connections() > before, 'A timed its hung call out and tried again (a new connection)');
    } finally {
      clearInterval(writer);
      await a.stop();
      await b.stop();
      await proxy.stop();
      await cluster.kubeConfig.makeApiClient(CoordinationV1Api).deleteNamespacedLease(lease).catch(() => undefined);
    }
  });
});

function caData(kc: KubeConfig): string {
  const c = kc.getCurrentCluster()!;
  if (c.caData) return c.caData;
  throw new Error('the test kubeconfig has no inline CA');
}

function userOf(kc: KubeConfig): Record<string, string> {
  const u = kc.getCurrentUser()!;
  const out: Record<string, string> = {};
  if (u.certData) out['client-certificate-data'] = u.certData;
  if (u.keyData) out['client-key-data'] = u.keyData;
  if (u.certFile) out['client-certificate'] = u.certFile;
  if (u.keyFile) out['client-key'] = u.keyFile;
  if (u.token) out.token = u.token;
  return out;
}
