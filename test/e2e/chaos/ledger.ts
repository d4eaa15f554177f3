// The chaos suite's bookkeeping: a minimal SMTP client that sends one message per
// connection and reports the reply to the final dot, and a ledger of every message that
// got a 250 there. Only a 250 counts as accepted; anything else (refused, reset, timed out)
// was never acknowledged, so the cluster owes nothing for it.
import { createConnection } from 'node:net';

export interface SendResult {
  /** The reply code to the final dot, or undefined when the session broke before it. */
  code?: number;
  /** Where the session stopped when it did not reach the final dot's reply. */
  failure?: string;
}

/** One SMTP transaction on its own connection; never rejects. */
export function sendOne(host: string, port: number, from: string, to: string, data: string, timeoutMs = 15_000): Promise<SendResult> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let done = false;
    const finish = (result: SendResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ failure: `timeout at step ${step}` }), timeoutMs);
    const steps = ['greeting', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'dot'] as const;
    let step = 0;
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', (e) => finish({ failure: `${steps[step] ?? step}: ${e.message}` }));
    socket.on('close', () => finish({ failure: `closed at ${steps[step] ?? step}` }));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (!/^\d{3} /.test(line)) continue; // continuation lines
        const code = Number(line.slice(0, 3));
        const expect = steps[step] === 'greeting' ? 220 : steps[step] === 'DATA' ? 354 : 250;
        if (steps[step] === 'dot') {
          socket.write('QUIT\r\n');
          finish({ code });
          return;
        }
        if (code !== expect) { finish({ code, failure: `${steps[step]} answered ${line}` }); return; }
        step++;
        switch (steps[step]) {
          case 'EHLO': socket.write('EHLO chaos.test\r\n'); break;
          case 'MAIL': socket.write(`MAIL FROM:<${from}>\r\n`); break;
          case 'RCPT': socket.write(`RCPT TO:<${to}>\r\n`); break;
          case 'DATA': socket.write('DATA\r\n'); break;
          case 'dot': socket.write(`${data.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..')}\r\n.\r\n`); break;
        }
      }
    });
  });
}

/** Every message the cluster acknowledged, by its ledger id, and what happened to the rest. */
export class Ledger {
  readonly acknowledged = new Set<string>();
  readonly notAcknowledged = new Map<string, number>();
  private next = 0;

  newId(prefix: string): string { return `${prefix}-${++this.next}`; }

  record(id: string, result: SendResult): void {
    if (result.code === 250) { this.acknowledged.add(id); return; }
    const key = result.code !== undefined ? `${result.code}` : (result.failure ?? 'unknown').replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR').slice(0, 60);
    this.notAcknowledged.set(key, (this.notAcknowledged.get(key) ?? 0) + 1);
  }

  /** Compares with what reached the destination: the acknowledged ids never delivered, and delivery counts. */
  reconcile(deliveredIds: string[]): { missing: string[]; duplicates: number; unexpected: number } {
    const seen = new Map<string, number>();
    for (const id of deliveredIds) seen.set(id, (seen.get(id) ?? 0) + 1);
    const missing = [...this.acknowledged].filter((id) => !seen.has(id));
    let duplicates = 0;
    for (const n of seen.values()) duplicates += n - 1;
    // Delivered but never acknowledged: the session broke after the data reached the spool. Allowed (at least once).
    const unexpected = [...seen.keys()].filter((id) => !this.acknowledged.has(id)).length;
    return { missing, duplicates, unexpected };
  }
}

/** The ledger id carried by a delivered message (its X-Ledger header). */
export function ledgerIdOf(raw: Buffer | string): string | undefined {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const header = text.slice(0, Math.max(0, text.indexOf('\r\n\r\n')) || text.length);
  return /^X-Ledger:\s*(\S+)/im.exec(header)?.[1];
}

/** A small seeded generator (mulberry32), so that a failing run can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
