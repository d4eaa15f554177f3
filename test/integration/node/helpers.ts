// Shared set-up of the mail-node integration tests: addresses in 127.10.0.0/16 (one /24
// per test file), a DNS server, capture destinations on one common port (smtp-port is
// one port for every destination).
import { addressIn, freePort } from '../../support/addresses.ts';
import { startCaptureServer, type CaptureServer, type CaptureOptions } from '../../support/capture-server.ts';

/** `127.10.<subnet>.<host>`. */
export function nodeTestAddress(subnet: number, host: number): string {
  return addressIn('127.10.0.0/16', subnet * 256 + host);
}

/** A port free on every one of these addresses (so that destinations share smtp-port). */
export async function commonPort(addresses: string[]): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(addresses[0]);
    let ok = true;
    for (const a of addresses.slice(1)) {
      const p = await freePort(a).catch(() => 0);
      if (!p) { ok = false; break; }
      // the port is free on `a` if we can bind it exactly
      const { createServer } = await import('node:net');
      ok = await new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen({ host: a, port, exclusive: true }, () => s.close(() => resolve(true)));
      });
      if (!ok) break;
    }
    if (ok) return port;
  }
  throw new Error('no common free port');
}

export async function startCaptures(addresses: string[], port: number, extra: Partial<CaptureOptions> = {}): Promise<CaptureServer[]> {
  return Promise.all(addresses.map((address) => startCaptureServer({ address, port, ...extra })));
}

/** Header value of a raw message. */
export function header(raw: Buffer, name: string): string | undefined {
  const head = raw.toString('utf8').split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head);
  return m?.[1];
}

/**
 * A raw SMTP session: connect (from `localAddress`), then `command(line)` sends one line
 * and resolves with the next complete reply. For replies that swaks cannot provoke, and
 * for sessions that stay open across a reload.
 */
export async function rawSession(host: string, port: number, localAddress?: string): Promise<{ greeting: string; command(line: string): Promise<string>; close(): void }> {
  const net = await import('node:net');
  const socket = net.connect({ host, port, localAddress });
  let buffer = '';
  let waiter: ((reply: string) => void) | null = null;
  const tryDeliver = () => {
    // a complete reply: lines until one with "ddd " (not "ddd-")
    const m = /^(?:\d{3}-.*\r\n)*\d{3}(?: .*)?\r\n/.exec(buffer);
    if (m && waiter) {
      buffer = buffer.slice(m[0].length);
      const w = waiter;
      waiter = null;
      w(m[0]);
    }
  };
  socket.on('data', (d) => { buffer += d.toString('latin1'); tryDeliver(); });
  socket.on('error', () => {});
  const next = () => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { waiter = null; reject(new Error(`no SMTP reply; buffer: ${JSON.stringify(buffer)}`)); }, 10000);
    waiter = (r) => { clearTimeout(timer); resolve(r); };
    tryDeliver();
  });
  const greeting = await next();
  return {
    greeting,
    command: (line: string) => { socket.write(line + '\r\n'); return next(); },
    close: () => socket.destroy(),
  };
}
