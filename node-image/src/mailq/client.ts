// MAILQv2 client: relays one ETRN to a peer's scheduler port, as ZMailer's smtpserver does.
// Never throws: the outcome is a line for the SMTP reply, and whether the peer said '+'.
import net from 'node:net';
import { LineSplitter } from './lines.ts';
import { MAILQ_GREETING, mailqAuthenticator } from './protocol.ts';

export interface MailqEtrnOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** `domain` or `@domain`. */
  argument: string;
  /** Who asked, `[client-ip]@our-hostname`. */
  origin: string;
  timeoutMs: number;
  /** Source address to connect from (this node's own address). */
  localAddress?: string;
}

export interface MailqEtrnOutcome {
  /** 'ok': the peer answered the ETRN with '+'; 'refused': it answered '-'; 'failed': no answer. */
  result: 'ok' | 'refused' | 'failed';
  /** The peer's reply line, or what went wrong. */
  line: string;
  /** For `ok`: true when the peer said it started something. */
  started?: boolean;
}

export function mailqEtrn(options: MailqEtrnOptions): Promise<MailqEtrnOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    socket.setEncoding('latin1');
    const splitter = new LineSplitter(4096);
    let stage: 'greeting' | 'challenge' | 'auth' | 'etrn' | 'done' = 'greeting';
    let connected = false;

    const finish = (outcome: MailqEtrnOutcome) => {
      if (stage === 'done') return;
      stage = 'done';
      clearTimeout(timer);
      if (outcome.result !== 'failed' && !socket.destroyed) socket.end('QUIT\n');
      else socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      finish({ result: 'failed', line: `Timed out after ${options.timeoutMs} ms at ${stage} with the scheduler` });
    }, options.timeoutMs);

    socket.on('connect', () => {
      connected = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) finish({ result: 'failed', line: `Unable to connect() to scheduler (${err.code ?? err.message})` });
      else finish({ result: 'failed', line: `Connection to scheduler failed (${err.code ?? err.message})` });
    });
    socket.on('close', () => finish({ result: 'failed', line: `Scheduler closed the connection at ${stage}` }));
    socket.on('data', (chunk: string) => {
      const lines = splitter.push(chunk);
      if (lines === 'too-long') {
        finish({ result: 'failed', line: 'Scheduler sent an overlong line' });
        return;
      }
      for (const line of lines) {
        if (stage === 'greeting') {
          if (!line.startsWith(MAILQ_GREETING)) {
            finish({ result: 'failed', line: 'Scheduler does not speak MAILQv2' });
            return;
          }
          stage = 'challenge';
        } else if (stage === 'challenge') {
          socket.write(`AUTH ${options.user} ${mailqAuthenticator(line, options.password)}\n`, 'latin1');
          stage = 'auth';
        } else if (stage === 'auth') {
          if (!line.startsWith('+')) {
            finish({ result: 'refused', line: `MQ2-AUTH failure occurred: ${line}` });
            return;
          }
          socket.write(`ETRN ${options.argument} ${options.origin}\n`, 'latin1');
          stage = 'etrn';
        } else if (stage === 'etrn') {
          const ok = line.startsWith('+');
          finish({ result: ok ? 'ok' : 'refused', line, started: ok ? !/didn't start/.test(line) : undefined });
          return;
        }
      }
    });
  });
}
