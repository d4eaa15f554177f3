// Says `ETRN <domain>` over SMTP (RFC 1985) to Addr[0], as an offline customer site would.
import net from 'node:net';

/** Splits buffered SMTP text into complete replies (pure): lines up to one with "ddd " or "ddd". */
export function takeReply(buffer: string): { reply: string; rest: string } | null {
  const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(buffer);
  return m ? { reply: m[0].replace(/\r/g, '').trimEnd(), rest: buffer.slice(m[0].length) } : null;
}

export async function sayEtrn(host: string, port: number, domain: string, helo = 'kubectl-mailcluster', timeoutMs = 60_000): Promise<{ greeting: string; reply: string; code: number }> {
  const socket = net.connect({ host, port });
  socket.setTimeout(timeoutMs);
  let buffer = '';
  const waiters: Array<(r: string) => void> = [];
  const failures: Array<(e: Error) => void> = [];
  const pump = () => {
    for (let t = takeReply(buffer); t && waiters.length; t = takeReply(buffer)) {
      buffer = t.rest;
      failures.shift();
      waiters.shift()!(t.reply);
    }
  };
  const fail = (e: Error) => { for (const f of failures.splice(0)) f(e); waiters.length = 0; };
  socket.on('data', (d) => { buffer += d.toString('latin1'); pump(); });
  socket.on('error', fail);
  socket.on('timeout', () => { fail(new Error(`${host}:${port}: no SMTP reply within ${timeoutMs} ms`)); socket.destroy(); });
  socket.on('close', () => fail(new Error(`${host}:${port}: connection closed`)));
  const next = () => new Promise<string>((resolve, reject) => { waiters.push(resolve); failures.push(reject); pump(); });
  try {
    const greeting = await next();
    if (!greeting.startsWith('220')) throw new Error(`${host}:${port} greeted ${greeting}`);
    socket.write(`EHLO ${helo}\r\n`);
    const ehlo = await next();
    if (!ehlo.startsWith('250')) throw new Error(`EHLO refused: ${ehlo}`);
    socket.write(`ETRN ${domain}\r\n`);
    const reply = await next();
    socket.write('QUIT\r\n');
    await next().catch(() => '');
    return { greeting, reply, code: Number(reply.slice(0, 3)) };
  } finally {
    socket.destroy();
  }
}
