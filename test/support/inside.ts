// HTTP from the host to a server inside the kubelet node's network namespace (a pod's admin
// port, an operator's metrics there): the connection is opened by the node's gateway
// (KubeletNode.dial), then node:http speaks over it.
import { request } from 'node:http';
import type { Socket } from 'node:net';

export type Dial = (target: { address: string; port: number }) => Promise<Socket>;

/** A network namespace to run a program in (nsenter exec: the PID is the program's) and to dial into. */
export interface InNamespace {
  command(cmd: string, args: string[]): [string, string[]];
  dial: Dial;
}

/** The kubelet node's namespace, where the pods are. */
export function inNode(node: { netnsCommand(cmd: string, args: string[]): [string, string[]]; dial: Dial }): InNamespace {
  return { command: (cmd, args) => node.netnsCommand(cmd, args), dial: node.dial };
}

export interface InsideResponse { status: number; headers: Record<string, string | string[] | undefined>; body: string }

export async function httpInside(dial: Dial, address: string, port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<InsideResponse> {
  const socket = await dial({ address, port });
  socket.resume(); // the gateway client hands it over paused (bytes after the CONNECT reply put back)
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = request({
      host: address, port, path, method: options.method ?? 'GET',
      headers: { connection: 'close', ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}), ...options.headers },
      createConnection: () => socket,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${options.method ?? 'GET'} http://${address}:${port}${path} (inside the namespace) timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
