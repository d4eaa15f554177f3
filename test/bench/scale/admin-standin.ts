// A stand-in for the mail nodes' admin port, for hollow pods (which run nothing). Every
// hollow pod reports the same IP (the fake CRI runtime's 192.168.192.168), so one listener
// there answers for all of them: POST /drain is accepted and GET /queue says "drained, empty",
// which is what a node with an empty queue answers once drained. It exists only for the
// operator's drain step of a roll; it counts what it was asked.
import { createServer, type Server } from 'node:http';

export interface AdminStandIn {
  counts: Map<string, number>;
  close(): Promise<void>;
}

export async function startAdminStandIn(host: string, port: number): Promise<AdminStandIn> {
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const key = `${req.method} ${path}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    req.resume();
    if (req.method === 'POST' && path === '/drain') {
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"draining":true}');
    } else if (req.method === 'GET' && path === '/queue') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"total":0,"draining":true,"drained":true}');
    } else if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) {
      res.writeHead(200).end('ok');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    counts,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
