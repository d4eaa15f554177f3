// mailcluster_operator_api_requests_total: the verb/resource naming (as the API server's own
// apiserver_request_total names them), and the counting itself, over a real HTTP server that
// client-node's generated clients talk to (so the channel client-node's own undici publishes
// on is the one counted), with a request to another origin left out.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { apiRequestOf, countApiRequests, type ApiRequest } from '../../../operator/src/controller/api-requests.ts';

describe('operator API request accounting', () => {
  it('names verbs and resources as the API server does', () => {
    const cases: Array<[string, string, string, ApiRequest]> = [
      ['GET', '/api/v1/namespaces/ns/pods?labelSelector=a%3Db', '', { verb: 'list', resource: 'pods' }],
      ['GET', '/api/v1/pods?watch=true&resourceVersion=5', '', { verb: 'watch', resource: 'pods' }],
      ['GET', '/api/v1/namespaces/ns/secrets/x', '', { verb: 'get', resource: 'secrets' }],
      ['PATCH', '/apis/mailcluster.io/v1alpha1/namespaces/ns/mailclusters/mc/status?fieldManager=m', 'application/apply-patch+yaml', { verb: 'apply', resource: 'mailclusters/status' }],
      ['PATCH', '/api/v1/namespaces/ns/pods/mc-0', 'application/merge-patch+json', { verb: 'patch', resource: 'pods' }],
      ['POST', '/api/v1/namespaces/ns/events', 'application/json', { verb: 'create', resource: 'events' }],
      ['PUT', '/apis/coordination.k8s.io/v1/namespaces/ns/leases/l', 'application/json', { verb: 'update', resource: 'leases' }],
      ['DELETE', '/api/v1/namespaces/ns/persistentvolumeclaims/mc-3-spool', '', { verb: 'delete', resource: 'persistentvolumeclaims' }],
      ['GET', '/api/v1/namespaces/ns', '', { verb: 'get', resource: 'namespaces' }],
      ['GET', '/apis/policy/v1/poddisruptionbudgets', '', { verb: 'list', resource: 'poddisruptionbudgets' }],
    ];
    for (const [method, path, type, want] of cases) assert.deepEqual(apiRequestOf(method, path, type), want, `${method} ${path}`);
  });

  describe('over a real HTTP server', () => {
    let server: Server;
    let other: Server;
    let url: string;
    const listen = (s: Server): Promise<string> => new Promise((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
    before(async () => {
      server = createServer((req, res) => {
        res.setHeader('Content-Type', 'application/json');
        if (req.url?.includes('/pods/missing')) { res.statusCode = 404; res.end(JSON.stringify({ kind: 'Status', code: 404 })); return; }
        res.end(JSON.stringify({ apiVersion: 'v1', kind: 'PodList', metadata: {}, items: [] }));
      });
      other = createServer((_req, res) => res.end('{}'));
      url = await listen(server);
      await listen(other);
    });
    after(() => { server.close(); other.close(); });

    it('counts client-node requests to the API server by verb, resource and code, and nothing else', async () => {
      const seen: string[] = [];
      const stop = countApiRequests(url, (r) => seen.push(`${r.verb} ${r.resource} ${r.code}`));
      try {
        const kc = new KubeConfig();
        kc.loadFromOptions({
          clusters: [{ name: 'c', server: url, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }],
          contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
        });
        const core = kc.makeApiClient(CoreV1Api);
        await core.listNamespacedPod({ namespace: 'ns' });
        await assert.rejects(core.readNamespacedPod({ namespace: 'ns', name: 'missing' }));
        const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
        await (await fetch(`${otherUrl}/api/v1/pods`)).text(); // a node's admin port, say: not the API server
        const closed = createServer();
        const closedUrl = await listen(closed);
        closed.close();
        const stopClosed = countApiRequests(closedUrl, (r) => seen.push(`${r.verb} ${r.resource} ${r.code}`));
        await fetch(`${closedUrl}/api/v1/namespaces/ns/configmaps`).catch(() => undefined);
        stopClosed();
      } finally { stop(); }
      assert.deepEqual(seen, ['list pods 200', 'get pods 404', 'list configmaps error']);
    });
  });
});
