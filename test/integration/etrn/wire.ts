// Minimal raw-socket clients for the ETRN tests: an SMTP conversation that returns each
// reply whole (multi-line replies joined with \r\n), and a MAILQv2 line conversation.
import net from 'node:net';

export interface SmtpReplyText {
  code: number;
  text: string;
}

/** Connects, reads the greeting, sends each command and collects its reply, then QUIT. */
export async function smtpTalk(host: string, port: number, commands: string[], options: { timeoutMs?: number; localAddress?: string } = {}): Promise<SmtpReplyText[]> {
  const socket = net.connect({ host, port, localAddress: options.localAddress });
  socket.setEncoding('latin1');
  let buffer = '';
  const waiting: Array<(r: SmtpReplyText | Error) => void> = [];
  const replies: SmtpReplyText[] = [];
  let current: string[] = [];
  const fail = (err: Error) => { for (const w of waiting.splice(0)) w(err); };
  socket.on('error', fail);
  socket.on('close', () => fail(new Error('connection closed')));
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      current.push(line);
      if (/^\d{3}( |$)/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), text: current.join('\r\n') };
        current = [];
        const w = waiting.shift();
        if (w) w(reply); else replies.push(reply);
      }
    }
  });
  const next = (): Promise<SmtpReplyText> => {
    const ready = replies.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for an SMTP reply')), options.timeoutMs ?? 15_000);
      waiting.push((r) => { clearTimeout(timer); if (r instanceof Error) reject(r); else resolve(r); });
    });
  };
  try {
    const out = [await next()];
    if (out[0].code !== 220) return out;
    for (const c of commands) {
      socket.write(c + '\r\n');
      out.push(await next());
    }
    socket.write('QUIT\r\n');
    return out;
  } finally {
    setTimeout(() => socket.destroy(), 200).unref();
  }
}

/** Reads `count` LF-terminated lines after writing each of `send` (one line each, in order). */
export async function lineTalk(host: string, port: number, script: Array<{ send?: string; read: number }>, options: { timeoutMs?: number; localAddress?: string } = {}): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const socket = net.connect({ host, port, localAddress: options.localAddress });
  socket.setEncoding('latin1');
  let buffer = '';
  const lines: string[] = [];
  let notify: (() => void) | undefined;
  let closed = false;
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
    notify?.();
  });
  socket.on('close', () => { closed = true; notify?.(); });
  socket.on('error', () => {});
  const until = Date.now() + timeoutMs;
  const out: string[] = [];
  try {
    for (const step of script) {
      if (step.send !== undefined) socket.write(step.send + '\n');
      while (lines.length < step.read) {
        if (closed || Date.now() > until) throw new Error(`expected ${step.read} more line(s), got ${JSON.stringify(out.concat(lines))}`);
        await new Promise<void>((r) => { notify = r; setTimeout(r, 100); });
      }
      out.push(...lines.splice(0, step.read));
    }
    return out;
  } finally {
    socket.destroy();
  }
}
