import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import { proxyV2Header, parseProxyV2Header, proxyV2Signature } from '../../../local/src/loadbalancer/proxy-protocol.ts';
import { backendsFor, backendsFromPods, wantsProxyV2 } from '../../../local/src/loadbalancer/backends.ts';
import { connect, createServer, type AddressInfo } from 'node:net';
import pino from 'pino';
import { TcpProxy } from '../../../local/src/loadbalancer/tcp-proxy.ts';
import { selects } from '../../../local/src/loadbalancer/controller.ts';
import { freePort } from '../../support/addresses.ts';

describe('local load balancer decisions', () => {
  it('encodes a PROXY v2 header for IPv4 byte for byte', () => {
    const header = proxyV2Header({ sourceAddress: '127.0.0.9', sourcePort: 40000, destinationAddress: '::ffff:127.43.0.1', destinationPort: 25 });
    assert.deepEqual(header.subarray(0, 12), proxyV2Signature);
    assert.deepEqual([...header.subarray(12)], [0x21, 0x11, 0, 12, 127, 0, 0, 9, 127, 43, 0, 1, 0x9c, 0x40, 0, 25]);
    assert.deepEqual(parseProxyV2Header(Buffer.concat([header, Buffer.from('EHLO')])), { sourceAddress: '127.0.0.9', sourcePort: 40000, destinationAddress: '127.43.0.1', destinationPort: 25, length: 28 });
  });

  it('encodes IPv6 addresses as AF_INET6', () => {
    const header = proxyV2Header({ sourceAddress: '2001:db8::1', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 });
    assert.equal(header[13], 0x21);
    assert.equal(header.readUInt16BE(14), 36);
    assert.equal(parseProxyV2Header(header)!.sourceAddress, '2001:db8:0:0:0:0:0:1');
  });

  it('sends only to ready endpoints at the slice port named like the Service port', () => {
    const slices: V1EndpointSlice[] = [{
      addressType: 'IPv4',
      ports: [{ name: 'smtp', port: 2525, protocol: 'TCP' }, { name: 'admin', port: 8025, protocol: 'TCP' }],
      endpoints: [
        { addresses: ['127.40.0.2'], conditions: { ready: true } },
        { addresses: ['127.40.0.1'], conditions: {} },
        { addresses: ['127.40.0.3'], conditions: { ready: false, serving: true, terminating: true } },
      ],
    }, { addressType: 'FQDN', ports: [{ name: 'smtp', port: 1 }], endpoints: [{ addresses: ['x.example'] }] }];
    assert.deepEqual(backendsFor({ name: 'smtp', port: 25 }, slices), [{ address: '127.40.0.1', port: 2525 }, { address: '127.40.0.2', port: 2525 }]);
    assert.deepEqual(backendsFor({ name: 'other', port: 9 }, slices), []);
  });

  it('sends to the ready, running pods a Service selects, resolving named target ports per pod', () => {
    const pod = (name: string, ip: string, labels: Record<string, string>, readyStatus: string, extra: Partial<V1Pod['metadata']> = {}): V1Pod => ({
      metadata: { name, namespace: 'ns', labels, ...extra },
      spec: { containers: [{ name: 'c', ports: [{ name: 'smtp', containerPort: name === 'b' ? 2526 : 2525 }] }] },
      status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: readyStatus }] },
    });
    const pods = [
      pod('a', '127.40.0.1', { app: 'mail', role: 'serving' }, 'True'),
      pod('b', '127.40.0.2', { app: 'mail', role: 'serving' }, 'True'),
      pod('c', '127.40.0.3', { app: 'mail', role: 'serving' }, 'False'),
      pod('d', '127.40.0.4', { app: 'mail', role: 'draining' }, 'True'),
      pod('e', '127.40.0.5', { app: 'mail', role: 'serving' }, 'True', { deletionTimestamp: new Date() }),
    ];
    const svc = { metadata: { name: 's', namespace: 'ns' }, spec: { selector: { app: 'mail', role: 'serving' } } };
    assert.deepEqual(backendsFromPods(svc, { port: 25, targetPort: 'smtp' as never }, pods), [{ address: '127.40.0.1', port: 2525 }, { address: '127.40.0.2', port: 2526 }]);
    assert.deepEqual(backendsFromPods(svc, { port: 25, targetPort: 2600 as never }, pods).map((b) => b.port), [2600, 2600]);
    assert.deepEqual(backendsFromPods({ ...svc, spec: { ...svc.spec, publishNotReadyAddresses: true } }, { port: 25 }, pods).length, 3);
  });

  it('a pod event concerns a Service whose selector picks the pod (an empty selector picks none)', () => {
    assert.equal(selects({ app: 'mc', role: 'serving' }, { app: 'mc', role: 'serving', index: '0' }), true);
    assert.equal(selects({ app: 'mc', role: 'serving' }, { app: 'mc', role: 'draining' }), false);
    assert.equal(selects({ app: 'mc' }, undefined), false);
    assert.equal(selects({}, { app: 'mc' }), false);
    assert.equal(selects(undefined, { app: 'mc' }), false);
  });

  it('reads the proxy-protocol annotation and rejects unknown values', () => {
    assert.equal(wantsProxyV2({ metadata: { annotations: { 'mailcluster.io/proxy-protocol': 'v2' } } }), true);
    assert.equal(wantsProxyV2({ metadata: {} }), false);
    assert.throws(() => wantsProxyV2({ metadata: { name: 's', namespace: 'n', annotations: { 'mailcluster.io/proxy-protocol': 'v1' } } }), /must be "v2"/);
  });
});

describe('local load balancer: the client address a pod sees (real sockets, 127.10.220.0/24)', () => {
  /** A backend that answers each connection with the address it came from. */
  async function whoSaw(preserveSource: boolean): Promise<string> {
    const backend = createServer((s) => s.end(s.remoteAddress ?? ''));
    await new Promise<void>((r) => backend.listen(0, '127.10.220.200', r));
    const port = await freePort('127.10.220.201');
    const proxy = new TcpProxy('127.10.220.201', port, pino({ level: 'silent' }));
    await proxy.listen();
    proxy.backends = [{ address: '127.10.220.200', port: (backend.address() as AddressInfo).port }];
    proxy.preserveSource = preserveSource;
    try {
      return await new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.10.220.201', port, localAddress: '127.10.220.202' });
        let seen = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => { seen += d; });
        s.on('end', () => resolve(seen));
        s.on('error', reject);
      });
    } finally {
      await proxy.close();
      await new Promise((r) => backend.close(r));
    }
  }

  it('externalTrafficPolicy Cluster: the load balancer\'s own address (the client is hidden)', async () => {
    assert.equal(await whoSaw(false), '127.10.220.201');
  });

  it('externalTrafficPolicy Local: the client\'s own address', async () => {
    assert.equal(await whoSaw(true), '127.10.220.202');
  });
});
