// The host's side of the node gateway (gateway.ts): dialing into the node's network namespace
// through the gateway's CONNECT socket, and serving the Unix sockets that the gateway's
// listeners forward to (the API server on 127.0.0.1, a test's server on the host loopback).
import { connect, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

/** A TCP connection to host:port inside the namespace, resolved once the gateway has opened it. */
export function dialThroughGateway(connectSocket: string, host: string, port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: connectSocket });
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`gateway: no answer for ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      socket.pause();
      const status = buffered.subarray(0, buffered.indexOf('\r\n')).toString('latin1');
      if (!/^HTTP\/1\.[01] 200 /.test(status)) {
        return fail(new Error(`gateway: ${host}:${port}: ${status} ${buffered.subarray(end + 4).toString('utf8').trim()}`));
      }
      clearTimeout(timer);
      const rest = buffered.subarray(end + 4);
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.on('error', fail);
    socket.once('connect', () => socket.write(`CONNECT ${host.includes(':') ? `[${host}]` : host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`));
  });
}

/** Serves `socketPath` by forwarding every connection to host:port on the host (e.g. the API server on 127.0.0.1). */
export function serveHostBridge(socketPath: string, host: string, port: number): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = createServer((client) => {
    const upstream = connect({ host, port });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      // accept() failing (EMFILE) must not end the process that serves the node its API server
      server.on('error', (err) => process.stderr.write(`host bridge ${socketPath}: ${err.message} (still serving)\n`));
      resolve(server);
    });
  });
}
