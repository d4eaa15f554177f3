// client-node opens a new TLS connection for every API request unless its dispatcher is reused
// (api-connections.ts). Over a real HTTPS server with client certificates (openssl PKI on
// 127.0.0.1): 20 requests cost 20 handshakes as client-node ships, 1 with reuse; a changed
// client certificate gets a new connection pool.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { reuseApiConnections } from '../../../operator/src/controller/api-connections.ts';
import { makeCa, makeLeaf } from '../../support/pki.ts';
import { makeTempDir } from '../../support/processes.ts';

describe('operator API connections (one pool, not a TLS handshake per request)', () => {
  let server: Server;
  let url: string;
  let handshakes = 0;
  let dir: string;
  let ca: { cert: string; key: string };

  before(async () => {
    dir = makeTempDir('op-conn-');
    ca = makeCa(dir, 'ca');
    const leaf = makeLeaf(dir, 'apiserver', ['127.0.0.1'], ca);
    server = createServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), ca: readFileSync(ca.cert), requestCert: true, rejectUnauthorized: true }, (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'PodList', metadata: {}, items: [] }));
    });
    server.on('secureConnection', () => { handshakes++; });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => { server.closeAllConnections(); server.close(); });

  function kubeConfig(client: { cert: string; key: string }): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: url, caData: readFileSync(ca.cert).toString('base64') }],
      users: [{ name: 'u', certData: readFileSync(client.cert).toString('base64'), keyData: readFileSync(client.key).toString('base64') }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
    });
    return kc;
  }

  it('20 requests: a handshake or two with reuse, 20 without', async () => {
    const client = makeLeaf(dir, 'operator', ['mailcluster-operator'], ca);
    const plain = kubeConfig(client).makeApiClient(CoreV1Api);
    handshakes = 0;
    for (let i = 0; i < 20; i++) await plain.listNamespacedPod({ namespace: 'ns' });
    const without = handshakes;

    const kc = kubeConfig(client);
    const close = reuseApiConnections(kc);
    const core = kc.makeApiClient(CoreV1Api);
    handshakes = 0;
    for (let i = 0; i < 20; i++) await core.listNamespacedPod({ namespace: 'ns' });
    const reused = handshakes;
    console.log(`      TLS handshakes for 20 sequential requests: ${without} as client-node ships, ${reused} with reuse`);
    assert.equal(without, 20, 'client-node alone: a connection per request');
    assert.ok(reused <= 2, `with reuse: one pool, a connection or two (${reused})`);
    await Promise.all(Array.from({ length: 5 }, () => core.listNamespacedPod({ namespace: 'ns' })));
    assert.ok(handshakes <= 6, 'parallel requests open at most one connection each, in the same pool');

    // A rotated client certificate: new settings, a new pool, which the server sees as a new handshake.
    const rotated = makeLeaf(dir, 'operator2', ['mailcluster-operator'], ca);
    const next = kubeConfig(rotated);
    (kc as unknown as { users: unknown[] }).users = (next as unknown as { users: unknown[] }).users;
    handshakes = 0;
    await core.listNamespacedPod({ namespace: 'ns' });
    await core.listNamespacedPod({ namespace: 'ns' });
    assert.ok(handshakes >= 1 && handshakes <= 2, `a new certificate: a new pool (${handshakes} handshakes for 2 requests)`);
    await close();
  });
});
