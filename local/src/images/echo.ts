// The `mailcluster/echo` test image: a tiny HTTP server for local-mode tests.
//   GET  /healthz            200 "ok"
//   GET  /readyz             200, or 503 after POST /unready (until POST /ready)
//   GET  /file               the content of $ECHO_FILE (a path in a mounted ConfigMap)
//   anything else            JSON: pod name, method, path, headers, client address
// Listens on $PORT (default 8080) at $MAILCLUSTER_BIND_ADDRESS (default 0.0.0.0). With
// $ECHO_TCP_PORT set, also a raw TCP echo there (returns every byte it gets, so a test can see
// a PROXY header the load balancer sent). Absolute paths resolve under $MAILCLUSTER_ROOT.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const host = process.env.MAILCLUSTER_BIND_ADDRESS || '0.0.0.0';
const port = Number(process.env.PORT || 8080);
const root = process.env.MAILCLUSTER_ROOT;
const resolvePath = (p: string) => (root && p.startsWith('/') ? join(root, p) : p);
let ready = true;

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://echo');
  const send = (status: number, body: string, type = 'text/plain') => {
    res.writeHead(status, { 'content-type': type, connection: 'close' });
    res.end(body);
  };
  if (url.pathname === '/healthz') return send(200, 'ok\n');
  if (url.pathname === '/readyz') return ready ? send(200, 'ready\n') : send(503, 'not ready\n');
  if (req.method === 'POST' && url.pathname === '/unready') { ready = false; return send(200, 'now unready\n'); }
  if (req.method === 'POST' && url.pathname === '/ready') { ready = true; return send(200, 'now ready\n'); }
  if (url.pathname === '/file') {
    const file = process.env.ECHO_FILE;
    if (!file) return send(404, 'ECHO_FILE is not set\n');
    try { return send(200, await readFile(resolvePath(file), 'utf8')); } catch (err) { return send(500, `${(err as Error).message}\n`); }
  }
  send(200, JSON.stringify({
    pod: process.env.HOSTNAME ?? '', method: req.method, path: url.pathname,
    headers: req.headers, client: req.socket.remoteAddress, server: req.socket.localAddress,
  }) + '\n', 'application/json');
});
server.listen(port, host, () => console.log(`echo listening on ${host}:${port}`));

if (process.env.ECHO_TCP_PORT) {
  const tcpPort = Number(process.env.ECHO_TCP_PORT);
  createTcpServer((socket) => { socket.on('error', () => undefined); socket.pipe(socket); })
    .listen(tcpPort, host, () => console.log(`tcp echo listening on ${host}:${tcpPort}`));
}

const stop = (signal: string) => {
  console.log(`echo got ${signal}, exiting`);
  server.close();
  process.exit(0);
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
