// swaks as an SMTP client: one transaction, its full transcript, and the reply
// codes it got, so tests can assert exactly what a server answered.
import { spawn } from 'node:child_process';

export interface SwaksOptions {
  /** `host:port` (or a host alone for port 25). */
  server: string;
  from?: string;
  /** One recipient or several (swaks sends one RCPT each). */
  to: string | string[];
  helo?: string;
  /** The body text; `size` instead makes a body of about that many bytes. */
  body?: string;
  size?: number;
  /** Extra header lines, e.g. ['Subject: hi', 'Received: from x']. */
  headers?: string[];
  /** Raw DATA (headers and body) instead of swaks' own message. */
  data?: string;
  /** Require STARTTLS. */
  tls?: boolean;
  /** Stop after this stage: connect, banner, first-helo, tls, helo, auth, mail, rcpt. */
  quitAfter?: 'connect' | 'banner' | 'first-helo' | 'tls' | 'helo' | 'auth' | 'mail' | 'rcpt';
  pipelining?: boolean;
  /** Local address to connect from (`--local-interface`), to play a given client. */
  localAddress?: string;
  /** Send this raw PROXY header (swaks --proxy-* options build v1/v2 headers). */
  proxy?: { version: 1 | 2; source: string; sourcePort?: number; dest: string; destPort?: number };
  timeoutSeconds?: number;
  /** Extra raw swaks arguments. */
  extraArgs?: string[];
  /** Runs swaks elsewhere, e.g. in a network namespace (`nsenter --net=… -- swaks …`). */
  command?: (cmd: string, args: string[]) => [string, string[]];
}

export interface SmtpReply { code: number; text: string }

export interface SwaksResult {
  exitCode: number;
  transcript: string;
  /** Every server reply, in order (multi-line replies joined). */
  replies: SmtpReply[];
  /** The last reply before QUIT's: the one that decided the transaction. */
  lastReply: SmtpReply | undefined;
  lastCode: number | undefined;
}

/** swaks' arguments for these options (pure). */
export function swaksArgs(options: SwaksOptions): string[] {
  const args = ['--server', options.server, '--from', options.from ?? 'sender@client.test'];
  const to = Array.isArray(options.to) ? options.to.join(',') : options.to;
  args.push('--to', to);
  if (options.helo) args.push('--helo', options.helo);
  if (options.data !== undefined) args.push('--data', '-');
  else if (options.body !== undefined || options.size !== undefined) args.push('--body', '-');
  for (const h of options.headers ?? []) args.push('--add-header', h);
  if (options.tls) args.push('--tls');
  if (options.quitAfter) args.push('--quit-after', options.quitAfter);
  if (options.pipelining) args.push('--pipeline');
  if (options.localAddress) args.push('--local-interface', options.localAddress);
  if (options.proxy) {
    const p = options.proxy;
    args.push('--proxy-version', String(p.version), '--proxy-family', p.version === 2 ? 'AF_INET' : 'TCP4', '--proxy-source', p.source,
      '--proxy-source-port', String(p.sourcePort ?? 40000), '--proxy-dest', p.dest, '--proxy-dest-port', String(p.destPort ?? 25));
  }
  args.push('--timeout', String(options.timeoutSeconds ?? 30));
  args.push(...(options.extraArgs ?? []));
  return args;
}

/** A body of `size` bytes in 76-character lines. */
export function bodyOfSize(size: number): string {
  const line = 'x'.repeat(76) + '\r\n';
  let body = line.repeat(Math.floor(size / line.length));
  body += 'y'.repeat(size - body.length);
  return body;
}

/**
 * Server replies from a swaks transcript: lines `<-  250 ok`, `<** 550 no` (an error),
 * `<~  250 ok` (over TLS); continuation lines `250-…` are folded into one reply.
 */
export function parseSwaksReplies(transcript: string): SmtpReply[] {
  const replies: SmtpReply[] = [];
  let current: string[] = [];
  for (const line of transcript.split(/\r?\n/)) {
    const m = /^<(?:-|~)?\**\s+(\d{3})([ -])(.*)$/.exec(line);
    if (!m) continue;
    current.push(m[3]);
    if (m[2] === ' ') {
      replies.push({ code: Number(m[1]), text: current.join('\n') });
      current = [];
    }
  }
  return replies;
}

/** The reply that decided the transaction: the last one, unless it answered our QUIT. */
export function decidingReply(transcript: string, replies: SmtpReply[]): SmtpReply | undefined {
  const sentQuit = /^\s*(?:->|~>)\s+QUIT\s*$/m.test(transcript);
  const last = replies[replies.length - 1];
  if (sentQuit && last?.code === 221 && replies.length > 1) return replies[replies.length - 2];
  return last;
}

export function swaks(options: SwaksOptions): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    const [cmd, args] = options.command ? options.command('/usr/bin/swaks', swaksArgs(options)) : ['/usr/bin/swaks', swaksArgs(options)];
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let transcript = '';
    child.stdout.on('data', (c: Buffer) => { transcript += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { transcript += c.toString(); });
    const guard = setTimeout(() => child.kill('SIGKILL'), ((options.timeoutSeconds ?? 30) + 10) * 1000);
    child.on('error', (err) => { clearTimeout(guard); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      const replies = parseSwaksReplies(transcript);
      const lastReply = decidingReply(transcript, replies);
      resolve({ exitCode: code ?? (signal ? 128 : 1), transcript, replies, lastReply, lastCode: lastReply?.code });
    });
    const stdin = options.data ?? (options.size !== undefined ? bodyOfSize(options.size) : options.body);
    child.stdin.on('error', () => { /* swaks may exit before reading it all */ });
    child.stdin.end(stdin ?? '');
  });
}
