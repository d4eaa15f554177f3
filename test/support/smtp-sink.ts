// Postfix's smtp-sink as a destination: accepts (or rejects, as told) and counts
// messages at full speed. Counting comes from its `-c` counters on stdout; with
// `dumpDir` every message is also written to a file there.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './addresses.ts';
import { assertPortFree, deathReason, makeTempDir, removeTempDir, spawnTracked, stopChild, tailOf, waitForPort, waitUntil } from './processes.ts';

/** smtp-sink command names: CONNECT, HELO, EHLO, MAIL, RCPT, DATA, "." (end of data), RSET, QUIT… */
export type SinkCommand = 'CONNECT' | 'HELO' | 'EHLO' | 'MAIL' | 'RCPT' | 'DATA' | '.' | 'RSET' | 'NOOP' | 'QUIT';

export interface SmtpSinkOptions {
  address: string;
  /** Default: a free port on `address`. */
  port?: number;
  /** Reply 4xx (`-r`) to these commands; `softReply` overrides the text, e.g. "451 4.3.0 try later". */
  softReject?: SinkCommand[];
  softReply?: string;
  /** Reply 5xx (`-f`) to these commands; `hardReply` overrides the text, e.g. "550 5.1.1 no such user". */
  hardReject?: SinkCommand[];
  hardReply?: string;
  /** Keep a copy of every message in a temp dir (slow: a file per message). */
  dump?: boolean;
  /** Greeting/EHLO hostname (`-h`). */
  hostname?: string;
  /** Most simultaneous connections (`-m`, default 256). */
  maxConnections?: number;
  backlog?: number;
}

export interface SmtpSink {
  address: string;
  port: number;
  /** Messages received so far (every "." smtp-sink saw). */
  count(): number;
  /** Sessions ended so far. */
  sessions(): number;
  /** Waits until `count() >= n`, at most `timeoutMs`. */
  waitForCount(n: number, timeoutMs?: number): Promise<void>;
  /** The dumped message files (with `dump: true`), oldest name first. */
  dumpedFiles(): string[];
  dumpDir: string | undefined;
  stop(): Promise<void>;
}

/** smtp-sink's arguments (pure). */
export function smtpSinkArgs(address: string, port: number, options: Omit<SmtpSinkOptions, 'address' | 'port'>, dumpDir?: string): string[] {
  const args = ['-u', 'nobody', '-c', '-t', '30', '-m', String(options.maxConnections ?? 256)];
  if (options.hostname) args.push('-h', options.hostname);
  if (options.softReject?.length) args.push('-r', options.softReject.join(','));
  if (options.softReply) args.push('-b', options.softReply);
  if (options.hardReject?.length) args.push('-f', options.hardReject.join(','));
  if (options.hardReply) args.push('-B', options.hardReply);
  // The template expands through strftime, then smtp-sink appends a random suffix.
  if (dumpDir) args.push('-d', `${dumpDir}/%Y%m%d%H%M%S.`);
  args.push(`inet:${address}:${port}`, String(options.backlog ?? 1024));
  return args;
}

/** The last `sess=N quit=N mesg=N` counters in smtp-sink's `-c` output. */
export function parseSinkCounters(text: string): { sessions: number; messages: number } | undefined {
  const all = [...text.matchAll(/sess=(\d+) quit=\d+ mesg=(\d+)/g)];
  const last = all[all.length - 1];
  return last ? { sessions: Number(last[1]), messages: Number(last[2]) } : undefined;
}

export async function startSmtpSink(options: SmtpSinkOptions): Promise<SmtpSink> {
  const { address } = options;
  const port = options.port ?? (await freePort(address));
  if (options.port !== undefined) assertPortFree(address, port, 'smtp-sink');
  const dumpDir = options.dump ? makeTempDir('sink-dump') : undefined;
  if (dumpDir) {
    // smtp-sink writes the dumps after dropping to nobody.
    const { chmodSync } = await import('node:fs');
    chmodSync(dumpDir, 0o777);
  }
  const child = spawnTracked('/usr/sbin/smtp-sink', smtpSinkArgs(address, port, options, dumpDir));
  const stderr = tailOf(child.stderr);
  let messages = 0;
  let sessions = 0;
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending = (pending + chunk.toString('latin1')).slice(-200);
    const counters = parseSinkCounters(pending);
    if (counters) { messages = counters.messages; sessions = counters.sessions; }
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopChild(child, 'SIGTERM', 3000);
    if (dumpDir) removeTempDir(dumpDir);
  };
  try {
    await waitForPort(address, port, { timeoutMs: 10000, abort: () => deathReason(child, stderr) });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    address,
    port,
    dumpDir,
    count: () => messages,
    sessions: () => sessions,
    waitForCount: (n, timeoutMs = 30000) =>
      waitUntil(`smtp-sink ${address}:${port} to count ${n} messages (has ${messages})`, () => messages >= n,
        { timeoutMs, intervalMs: 20, abort: () => deathReason(child, stderr) }),
    dumpedFiles: () => (dumpDir ? readdirSync(dumpDir).sort().map((f) => join(dumpDir, f)) : []),
    stop,
  };
}
