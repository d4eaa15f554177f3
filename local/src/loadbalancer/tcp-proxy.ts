// A TCP listener on one LoadBalancer address and port that forwards each connection to the
// next ready backend (round-robin), optionally prefixed with a PROXY v2 header.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend } from './backends.ts';
import { proxyV2Header } from './proxy-protocol.ts';

/**
 * Opens a connection to a backend, resolved once it can carry the client's bytes. Default
 * `net.connect`; local mode's real node dials pods inside its network namespace through a
 * gateway instead (local/src/node/gateway-client.ts).
 */
export type Dialer = (backend: Backend, localAddress: string) => Promise<Socket>;

/** A plain TCP connection from `localAddress`, resolved once connected. */
export function tcpDial(backend: Backend, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: backend.address, port: backend.port, localAddress });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export class TcpProxy {
  readonly address: string;
  readonly port: number;
  backends: Backend[] = [];
  proxyV2 = false;
  readonly #server: Server;
  readonly #log: Logger;
  readonly #connections = new Set<Socket>();
  #next = 0;

  readonly #dial: Dialer;
  /**
   * externalTrafficPolicy: Local. A cloud's pass-through load balancer and kube-proxy then leave
   * the client's source address as it is; here each upstream connection is made from the
   * client's own address, which on loopback (127.0.0.0/8, all local) can be bound. Only the
   * plain TCP dialer honours it: through local mode's node gateway every connection comes from
   * the gateway's address (10.244.0.1); there the real kube-proxy keeps a routed client's
   * address at the Service's node port (KubeletNode.outsideClient).
   */
  preserveSource = false;

  constructor(address: string, port: number, log: Logger, dial: Dialer = tcpDial) {
    this.address = address;
    this.port = port;
    this.#log = log;
    this.#dial = dial;
    this.#server = createServer({ pauseOnConnect: true }, (client) => this.#accept(client));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: this.address, port: this.port }, () => {
        this.#server.off('error', reject);
        this.#server.on('error', (err) => this.#log.warn({ err: err.message }, 'listener error'));
        resolve();
      });
    });
  }

  /** Stops listening and drops the connections in flight (the Service is gone). */
  close(): Promise<void> {
    for (const c of this.#connections) c.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.#connections.add(client);
    client.on('close', () => this.#connections.delete(client));
    client.on('error', () => undefined);
    this.#tryBackend(client, 0);
  }

  /** Connects to the next backend; on a refused connection, tries the others once each. */
  #tryBackend(client: Socket, attempt: number): void {
    const backends = this.backends;
    if (backends.length === 0 || attempt >= backends.length || client.destroyed) {
      client.destroy();
      return;
    }
    const backend = backends[this.#next++ % backends.length];
    // Otherwise from the load balancer's own address, as a cloud load balancer connects from its
    // own: the address the nodes' proxy-protocol networks name by default (not whatever source
    // address the kernel would pick, 127.0.0.1). A gateway dialer connects from the gateway.
    const source = this.preserveSource && client.remoteAddress?.startsWith('127.') ? client.remoteAddress : this.address;
    this.#dial(backend, source).then((upstream) => {
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      this.#connections.add(upstream);
      if (this.proxyV2) {
        upstream.write(proxyV2Header({
          sourceAddress: client.remoteAddress ?? '0.0.0.0', sourcePort: client.remotePort ?? 0,
          destinationAddress: client.localAddress ?? this.address, destinationPort: client.localPort ?? this.port,
        }));
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => {
        this.#connections.delete(upstream);
        client.end();
      });
      client.on('close', () => upstream.destroy());
    }, (err: Error) => {
      this.#log.debug({ backend, err: err.message }, 'backend refused, trying the next');
      this.#tryBackend(client, attempt + 1);
    });
  }
}
