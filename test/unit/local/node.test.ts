// The real node's pure parts (config renderers, the CONNECT parser, the PV for a claim, the
// cache key) and its gateway over real sockets: a Unix-socket CONNECT proxy to a TCP server on
// 127.47.x, as the host's LoadBalancer and the API server's egress use it.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { makeTempDir, removeTempDir } from '../../support/processes.ts';
import { addressIn, freePort } from '../../support/addresses.ts';
import { parseConnectHead, serveConnectProxy } from '../../../local/src/node/gateway.ts';
import { dialThroughGateway, serveHostBridge } from '../../../local/src/node/gateway-client.ts';
import {
  DEFAULT_NETWORK, bridgeMac, cniConfList, containerdConfig, egressSelectorConfig, kubeletConfig, kubernetesEndpointSlice, nodeLayout, type NodeNetwork,
} from '../../../local/src/node/config.ts';
import { localVolumeFor } from '../../../local/src/node/provisioner.ts';
import { nodeCacheKey } from '../../../local/src/node/build.ts';
import { TcpProxy } from '../../../local/src/loadbalancer/tcp-proxy.ts';
import { parseProxyV2Header } from '../../../local/src/loadbalancer/proxy-protocol.ts';
import { pino } from 'pino';

const RANGE = '127.47.0.0/16';
const network: NodeNetwork = { ...DEFAULT_NETWORK, netns: 'mailcluster-test' };

describe('local node: config renderers', () => {
  const layout = nodeLayout('/var/tmp/some-local-dir');

  it('keeps sockets under /run with short paths (sun_path is 108 bytes)', () => {
    for (const p of [layout.containerdSocket, layout.connectSocket, layout.apiSocket]) {
      assert.ok(p.startsWith('/run/mailcluster-node/'), p);
      assert.ok(Buffer.byteLength(p) < 100, p);
    }
    assert.notEqual(nodeLayout('/var/tmp/other').runDir, layout.runDir);
  });

  it('configures the kubelet for this machine: cgroupfs on v1, no OOM score change, no anonymous API, short sync', () => {
    const c = JSON.parse(kubeletConfig(network, layout, { caFile: '/ca.crt', servingCert: '/s.crt', servingKey: '/s.key' }));
    assert.equal(c.cgroupDriver, 'cgroupfs');
    assert.equal(c.failCgroupV1, false);
    assert.equal(c.oomScoreAdj, 0);
    assert.equal(c.authentication.anonymous.enabled, false);
    assert.equal(c.authentication.x509.clientCAFile, '/ca.crt');
    assert.equal(c.authorization.mode, 'Webhook');
    assert.equal(c.syncFrequency, '10s');
    assert.equal(c.address, network.nodeIP);
    assert.equal(c.containerRuntimeEndpoint, `unix://${layout.containerdSocket}`);
  });

  it('configures containerd: local pause pinned, runc without systemd cgroups, restricted OOM score', () => {
    const t = containerdConfig(layout, { shimDir: '/bin-dir', sandboxImage: 'localhost/mailcluster/pause:local', runc: '/usr/sbin/runc' });
    assert.match(t, /^version = 3$/m);
    assert.match(t, /sandbox = "localhost\/mailcluster\/pause:local"/);
    assert.match(t, /SystemdCgroup = false/);
    assert.match(t, /restrict_oom_score_adj = true/);
    assert.match(t, /BinaryName = "\/usr\/sbin\/runc"/);
    assert.match(t, /disable_tcp_service = true/);
  });

  it('gives pods the bridge, addresses after the node\'s own, routes to the ClusterIPs and the outside network, and no default route', () => {
    const c = JSON.parse(cniConfList(network, layout));
    const bridge = c.plugins[0];
    assert.equal(bridge.bridge, network.bridge);
    assert.equal(bridge.isDefaultGateway, false);
    assert.deepEqual(bridge.ipam.routes, [{ dst: network.serviceCIDR }, { dst: network.outsideCIDR }]);
    assert.equal(bridge.ipam.ranges[0][0].gateway, network.nodeIP);
    assert.equal(bridge.ipam.ranges[0][0].rangeStart, network.podRangeStart);
    const int = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    for (const spare of network.spareAddresses) assert.ok(int(spare) < int(network.podRangeStart), `${spare} outside the pods' range`);
  });

  it('pins the bridge\'s MAC: locally administered, unicast, derived from the node address', () => {
    assert.equal(bridgeMac('10.244.0.1'), '02:00:0a:f4:00:01');
    fc.assert(fc.property(fc.ipV4(), (ip) => {
      const mac = bridgeMac(ip);
      assert.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      const first = parseInt(mac.slice(0, 2), 16);
      assert.equal(first & 0b11, 0b10, 'locally administered, not multicast');
      assert.notEqual(bridgeMac(ip === '10.0.0.1' ? '10.0.0.2' : '10.0.0.1'), mac);
    }));
  });

  it('sends the API server\'s cluster egress through the gateway socket and publishes the API endpoint on the node address', () => {
    const e = JSON.parse(egressSelectorConfig('/run/x/connect.sock'));
    assert.deepEqual(e.egressSelections, [{ name: 'cluster', connection: { proxyProtocol: 'HTTPConnect', transport: { uds: { udsName: '/run/x/connect.sock' } } } }]);
    const slice = kubernetesEndpointSlice(network, 6443) as { endpoints: Array<{ addresses: string[] }>; ports: Array<{ port: number }>; metadata: { labels: Record<string, string> } };
    assert.deepEqual(slice.endpoints[0].addresses, [network.nodeIP]);
    assert.equal(slice.ports[0].port, 6443);
    assert.equal(slice.metadata.labels['kubernetes.io/service-name'], 'kubernetes');
  });

  it('provisions a local PersistentVolume (the kubelet applies fsGroup to it) bound to the claim, on the one node', () => {
    const pv = localVolumeFor({ metadata: { uid: 'u1', name: 'c', namespace: 'ns' }, spec: { resources: { requests: { storage: '2Gi' } }, storageClassName: 'mailcluster-local' } }, '/v/pvc-u1', 'local-node');
    assert.equal(pv.metadata?.name, 'pvc-u1');
    assert.equal(pv.spec?.local?.path, '/v/pvc-u1');
    assert.equal(pv.spec?.hostPath, undefined);
    assert.deepEqual(pv.spec?.claimRef, { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: 'ns', name: 'c', uid: 'u1' });
    assert.deepEqual(pv.spec?.nodeAffinity?.required?.nodeSelectorTerms[0].matchExpressions?.[0].values, ['local-node']);
    assert.equal(pv.spec?.capacity?.storage, '2Gi');
  });

  it('keys the build cache on every input file', () => {
    const files = { 'go.mod': 'a', 'go.sum': 'b' };
    assert.equal(nodeCacheKey(files, 'linux-x64'), nodeCacheKey({ ...files }, 'linux-x64'));
    assert.notEqual(nodeCacheKey(files, 'linux-x64'), nodeCacheKey({ ...files, 'go.sum': 'c' }, 'linux-x64'));
    assert.notEqual(nodeCacheKey(files, 'linux-x64'), nodeCacheKey(files, 'linux-arm64'));
  });
});

describe('local node: gateway CONNECT parsing', () => {
  it('parses host:port and refuses anything else', () => {
    fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
      assert.deepEqual(parseConnectHead(`CONNECT ${ip}:${port} HTTP/1.1\r\nHost: x`), { host: ip, port });
    }));
    assert.deepEqual(parseConnectHead('CONNECT [fd00::1]:25 HTTP/1.1'), { host: 'fd00::1', port: 25 });
    for (const bad of ['GET / HTTP/1.1', 'CONNECT 10.0.0.1 HTTP/1.1', 'CONNECT 10.0.0.1:0 HTTP/1.1', 'CONNECT 10.0.0.1:70000 HTTP/1.1', 'CONNECT a b:1 HTTP/1.1', '']) {
      assert.ok('error' in parseConnectHead(bad), bad);
    }
  });
});

describe('local node: gateway over real sockets', () => {
  let dir: string;
  const servers: Server[] = [];
  const serverIp = addressIn(RANGE, 10);
  let port: number;
  let refusedPort: number;
  let socketPath: string;

  before(async () => {
    dir = makeTempDir('gateway');
    socketPath = join(dir, 'connect.sock');
    port = await freePort(serverIp);
    refusedPort = await freePort(serverIp);
    // speaks first, as an SMTP server does, then echoes
    const banner = createServer((s) => { s.write('220 hello\r\n'); s.pipe(s); });
    await new Promise<void>((r) => banner.listen({ host: serverIp, port }, r));
    servers.push(banner, serveConnectProxy(socketPath));
    await new Promise((r) => setTimeout(r, 100));
  });

  after(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
    removeTempDir(dir);
  });

  it('opens a TCP connection through the CONNECT socket; a greeting sent at once is not lost', async () => {
    const socket = await dialThroughGateway(socketPath, serverIp, port);
    const got = await new Promise<string>((resolve) => {
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => {
        data += c;
        if (data.includes('ping')) resolve(data);
      });
      socket.resume();
      socket.write('ping\r\n');
    });
    socket.destroy();
    assert.equal(got, '220 hello\r\nping\r\n');
  });

  it('reports a refused target as an error (502), not as a connection', async () => {
    await assert.rejects(dialThroughGateway(socketPath, serverIp, refusedPort), /502/);
  });

  it('answers a request that is not CONNECT with 400', async () => {
    const { connect } = await import('node:net');
    const reply = await new Promise<string>((resolve) => {
      const s = connect({ path: socketPath }, () => s.write('GET / HTTP/1.1\r\n\r\n'));
      let data = '';
      s.on('data', (c) => { data += c; });
      s.on('close', () => resolve(data));
    });
    assert.match(reply, /^HTTP\/1\.1 400 /);
  });

  it('bridges a Unix socket to a TCP server (the API server side)', async () => {
    const bridgePath = join(dir, 'api.sock');
    const bridge = await serveHostBridge(bridgePath, serverIp, port);
    servers.push(bridge);
    const { connect } = await import('node:net');
    const got = await new Promise<string>((resolve) => {
      const s = connect({ path: bridgePath });
      let data = '';
      s.on('data', (c) => {
        data += c;
        if (data.includes('\r\n')) { s.destroy(); resolve(data); }
      });
    });
    assert.equal(got, '220 hello\r\n');
  });

  it('carries a LoadBalancer connection (with its PROXY v2 header) to a backend through the gateway; a refused backend is skipped', async () => {
    const lbIp = addressIn(RANGE, 11);
    const lbPort = await freePort(lbIp);
    // the backend records the first bytes it gets (the PROXY header) and answers with a greeting
    let firstBytes: Buffer | undefined;
    const backendPort = await freePort(serverIp);
    const backend = createServer((s) => {
      s.once('data', (b: Buffer) => { firstBytes = b; s.end('220 backend\r\n'); });
    });
    await new Promise<void>((r) => backend.listen({ host: serverIp, port: backendPort }, r));
    servers.push(backend);
    const proxy = new TcpProxy(lbIp, lbPort, pino({ level: 'silent' }), (b) => dialThroughGateway(socketPath, b.address, b.port));
    proxy.proxyV2 = true;
    proxy.backends = [{ address: serverIp, port: refusedPort }, { address: serverIp, port: backendPort }];
    await proxy.listen();
    try {
      const { connect } = await import('node:net');
      const client = addressIn(RANGE, 12);
      const got = await new Promise<string>((resolve, reject) => {
        const s = connect({ host: lbIp, port: lbPort, localAddress: client });
        let data = '';
        s.on('data', (c) => { data += c; });
        s.on('error', reject);
        s.on('close', () => resolve(data));
      });
      assert.equal(got, '220 backend\r\n');
      const header = parseProxyV2Header(firstBytes!);
      assert.equal(header?.sourceAddress, client);
    } finally {
      await proxy.close();
    }
  });

  it('the gateway program survives running out of file descriptors (prlimit nofile 64) and serves again once they are free', async function () {
    this.timeout(30_000);
    const { connect } = await import('node:net');
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const bridgePath = join(dir, 'fd-api.sock');
    servers.push(await serveHostBridge(bridgePath, serverIp, port));
    const listenIp = addressIn(RANGE, 13);
    const listenPort = await freePort(listenIp);
    const gatewayProgram = fileURLToPath(new URL('../../../local/src/node/gateway.ts', import.meta.url));
    const gateway = spawn('prlimit', ['--nofile=64:64', '--', process.execPath, gatewayProgram, '--forward-socket', bridgePath, '--forward-listen', `${listenIp}:${listenPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    gateway.stderr.on('data', (c) => { stderr += c; });
    const greeting = (): Promise<string> => new Promise((resolve) => {
      const s = connect({ host: listenIp, port: listenPort });
      let data = '';
      s.on('data', (c) => { data += c; if (data.includes('\r\n')) { s.destroy(); resolve(data); } });
      s.on('error', () => resolve(''));
      s.on('close', () => resolve(data));
      s.setTimeout(3000, () => s.destroy());
    });
    const held: Array<import('node:net').Socket> = [];
    try {
      const deadline = Date.now() + 10_000;
      while ((await greeting()) !== '220 hello\r\n') {
        assert.ok(Date.now() < deadline, `the gateway did not serve: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // 100 held connections need 200 descriptors in the gateway: far past its 64 (libuv then
      // drops waiting connections; an upstream that cannot be opened ends its client)
      await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve) => {
        const s = connect({ host: listenIp, port: listenPort }, () => resolve());
        s.on('error', () => resolve());
        held.push(s);
      })));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(gateway.exitCode, null, `the gateway still runs (stderr: ${stderr})`);
      for (const s of held) s.destroy();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await greeting(), '220 hello\r\n', 'served again once the descriptors were free');
      assert.equal(gateway.exitCode, null);
    } finally {
      for (const s of held) s.destroy();
      gateway.kill('SIGKILL');
    }
  });
});
