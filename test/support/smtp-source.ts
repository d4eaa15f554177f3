// Postfix's smtp-source as a load generator: N parallel sessions sending M messages
// in total; returns how long it took and how many DATA commands completed.
import { spawnTracked } from './processes.ts';

export interface SmtpSourceOptions {
  /** `host:port`. */
  server: string;
  /** Parallel sessions (`-s`, default 1). */
  sessions?: number;
  /** Messages in total (`-m`, default 1). */
  count?: number;
  /** Payload bytes per message, headers not included (`-l`). */
  size?: number;
  from?: string;
  to?: string;
  /** Recipients per message (`-r`); names get a number prefix. */
  recipients?: number;
  /** HELO name (`-M`). */
  helo?: string;
  /** Send every message of a session over one connection (`-d`) instead of one connection each. */
  reuseConnections?: boolean;
  /** Keep going on unexpected replies (`-A`). */
  ignoreErrors?: boolean;
  /** Kill it after this long (default 10 minutes). */
  timeoutMs?: number;
}

export interface SmtpSourceResult {
  exitCode: number;
  elapsedMs: number;
  /** DATA commands completed, from smtp-source's `-c` counter. */
  completed: number;
  stderr: string;
}

/** smtp-source's arguments (pure). */
export function smtpSourceArgs(options: SmtpSourceOptions): string[] {
  const args = ['-c', '-s', String(options.sessions ?? 1), '-m', String(options.count ?? 1)];
  if (options.size !== undefined) args.push('-l', String(options.size));
  if (options.from) args.push('-f', options.from);
  if (options.to) args.push('-t', options.to);
  if (options.recipients) args.push('-r', String(options.recipients));
  if (options.helo) args.push('-M', options.helo);
  if (options.reuseConnections) args.push('-d');
  if (options.ignoreErrors) args.push('-A');
  args.push(`inet:${options.server}`);
  return args;
}

export function smtpSource(options: SmtpSourceOptions): Promise<SmtpSourceResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawnTracked('/usr/sbin/smtp-source', smtpSourceArgs(options));
    let counterTail = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => { counterTail = (counterTail + c.toString('latin1')).slice(-64); });
    child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-8000); });
    const guard = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600000);
    child.on('error', (err) => { clearTimeout(guard); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      const numbers = counterTail.match(/\d+/g);
      const completed = numbers ? Number(numbers[numbers.length - 1]) : 0;
      resolve({ exitCode: code ?? (signal ? 128 : 1), elapsedMs, completed, stderr });
    });
  });
}
