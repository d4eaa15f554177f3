// The node's gateway: the one program that joins the host and the node's network namespace.
// It runs INSIDE the namespace (nsenter --net) and talks to the host only over Unix sockets,
// whose paths are filesystem names and so reachable from both sides (a network namespace
// scopes IP sockets, not pathname sockets). Nothing is bound or routed outside 127.0.0.0/8
// on the host.
//   --connect-socket PATH  an HTTP CONNECT proxy on PATH: `CONNECT 10.244.1.7:2525 HTTP/1.1`
//                          opens that TCP connection inside the namespace. kube-apiserver's
//                          egress selector (`cluster`: kubelet logs/exec/port-forward, pod
//                          and service proxy) and the host's LoadBalancer use it.
//   --forward-socket PATH --forward-listen HOST:PORT ...  TCP listeners inside the namespace
//                          whose connections go to PATH, which the host serves and forwards
//                          to a server on its loopback: how the kubelet, kube-proxy and pods
//                          (through the `kubernetes` Service) reach the API server, and pods a
//                          test's own server (KubeletNode.exposeHost).
import { connect, createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The target of an HTTP CONNECT request head, or an error text. Pure. */
export function parseConnectHead(head: string): { host: string; port: number } | { error: string } {
  const line = head.split('\r\n', 1)[0];
  const m = /^CONNECT (\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5}) HTTP\/1\.[01]$/.exec(line);
  if (!m) return { error: `not a CONNECT request: ${JSON.stringify(line.slice(0, 100))}` };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return { error: `bad port ${m[2]}` };
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

/** Reads a request head (up to the blank line) off a socket; the bytes after it are put back. */
function readHead(socket: Socket, limit = 8192): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.off('data', onData);
        socket.pause();
        const rest = buffered.subarray(end + 4);
        if (rest.length) socket.unshift(rest);
        resolve(buffered.subarray(0, end).toString('latin1'));
      } else if (buffered.length > limit) {
        socket.off('data', onData);
        reject(new Error('request head too long'));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => reject(new Error('closed before the request head ended')));
  });
}

function splice(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

export function serveConnectProxy(path: string): ReturnType<typeof createServer> {
  rmSync(path, { force: true });
  const server = createServer((client) => {
    client.on('error', () => undefined);
    readHead(client).then((head) => {
      const target = parseConnectHead(head);
      if ('error' in target) {
        client.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\r\n${target.error}\n`);
        return;
      }
      const upstream = connect({ host: target.host, port: target.port });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        splice(client, upstream);
        client.resume();
      });
      upstream.once('error', (err) => {
        if (!connected) client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\n${err.message}\n`);
      });
    }, () => client.destroy());
  });
  keepServingOnAcceptErrors(server, `connect socket ${path}`);
  server.listen(path);
  return server;
}

/**
 * A listening server whose accept() fails emits 'error' (libuv absorbs EMFILE by dropping the
 * waiting connections, but ENOBUFS or ENOMEM get through); unhandled, that would end the
 * gateway and cut the node off from the API server. Such an error is logged and the server
 * goes on; an error before it listens (the address is taken) ends the gateway, whose
 * supervisor starts it again.
 */
function keepServingOnAcceptErrors(server: ReturnType<typeof createServer>, what: string): void {
  server.on('error', (err) => {
    if (server.listening) {
      process.stderr.write(`gateway: ${what}: ${err.message} (still serving)\n`);
      return;
    }
    process.stderr.write(`gateway: cannot listen on ${what}: ${err.message}\n`);
    process.exit(1);
  });
}

export function serveForwarders(socketPath: string, listens: Array<{ host: string; port: number }>): void {
  for (const { host, port } of listens) {
    const server = createServer((client) => {
      const upstream = connect({ path: socketPath });
      splice(client, upstream);
    });
    keepServingOnAcceptErrors(server, `${host}:${port}`);
    server.listen({ host, port });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const listens: Array<{ host: string; port: number }> = [];
  let connectSocket: string | undefined;
  let forwardSocket: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--connect-socket') connectSocket = args[++i];
    else if (args[i] === '--forward-socket') forwardSocket = args[++i];
    else if (args[i] === '--forward-listen') {
      const [host, port] = args[++i].split(/:(?=\d+$)/);
      listens.push({ host, port: Number(port) });
    } else throw new Error(`gateway: unknown argument ${args[i]}`);
  }
  if (connectSocket) serveConnectProxy(connectSocket);
  if (forwardSocket) serveForwarders(forwardSocket, listens);
  process.stdout.write(`gateway listening (connect ${connectSocket}, forwarding ${listens.map((l) => `${l.host}:${l.port}`).join(',')})\n`);
  const quit = () => process.exit(0);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}
