// The MAILQv2 listener (ZMailer's scheduler port): greeting and challenge, AUTH against
// scheduler.auth, ETRN handed to the node. One line at a time per connection, bounded
// line length, idle timeout, bounded connection count.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { SchedulerAuthUser } from './auth.ts';
import { LineSplitter } from './lines.ts';
import { MAILQ_GREETING, MailqSession, makeChallenge } from './protocol.ts';
import type { MailqStep } from './protocol.ts';

export interface MailqEtrnRequest {
  argument: string;
  origin: string;
  user: string;
  clientIp: string;
}

export interface MailqServerOptions {
  host: string;
  port: number;
  /** The current scheduler.auth users (read on every AUTH, so a reload applies at once). */
  users: () => readonly SchedulerAuthUser[];
  /** Runs an ETRN; returns the reply line (`+OK; ...` or `-...`). */
  onEtrn: (request: MailqEtrnRequest) => Promise<string>;
  logger: Logger;
  idleTimeoutMs?: number;
  maxLineLength?: number;
  maxConnections?: number;
}

let challengeCounter = 0;

export class MailqServer {
  readonly #options: Required<MailqServerOptions>;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  constructor(options: MailqServerOptions) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as MailqServerOptions;
    this.#options = { idleTimeoutMs: 60_000, maxLineLength: 1024, maxConnections: 100, ...given };
    this.#server = net.createServer((socket) => this.#onConnection(socket));
    this.#server.maxConnections = this.#options.maxConnections;
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  address(): AddressInfo | undefined {
    return (this.#server.address() as AddressInfo | null) ?? undefined;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #onConnection(socket: net.Socket): void {
    const { logger } = this.#options;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', (err) => logger.debug({ err: err.message }, 'mailq connection error'));
    socket.setEncoding('latin1');
    socket.setTimeout(this.#options.idleTimeoutMs, () => {
      logger.info({ client: clientIp(socket) }, 'mailq connection idle, closed');
      socket.destroy();
    });

    const ip = clientIp(socket);
    const challenge = makeChallenge(nowMicros(), ++challengeCounter);
    const session = new MailqSession(challenge, ip);
    const splitter = new LineSplitter(this.#options.maxLineLength);
    const pending: string[] = [];
    let busy = false;
    let closing = false;

    const write = (line: string) => {
      if (!socket.destroyed) socket.write(line + '\n', 'latin1');
    };
    const run = async () => {
      if (busy) return;
      busy = true;
      while (pending.length > 0 && !closing) {
        const line = pending.shift() as string;
        const step = session.handleLine(line, this.#options.users());
        await this.#perform(step, session, ip, write, () => {
          closing = true;
          socket.end();
        });
      }
      busy = false;
    };

    write(MAILQ_GREETING);
    write(challenge);
    socket.on('data', (chunk: string) => {
      if (closing) return;
      const lines = splitter.push(chunk);
      if (lines === 'too-long') {
        logger.warn({ client: ip }, 'mailq line too long, connection closed');
        write('-BAD; LINE TOO LONG');
        closing = true;
        socket.end();
        return;
      }
      pending.push(...lines);
      void run();
    });
  }

  async #perform(step: MailqStep, session: MailqSession, ip: string, write: (l: string) => void, close: () => void): Promise<void> {
    const { logger } = this.#options;
    if (step.kind === 'reply') {
      if (step.event?.outcome === 'refused') {
        logger.warn({ client: ip, user: step.event.user, reason: step.event.reason }, 'mailq request refused');
      } else if (step.event?.outcome === 'authenticated') {
        logger.info({ client: ip, user: step.event.user }, 'mailq user authenticated');
      }
      write(step.line);
      if (step.close) close();
      return;
    }
    let reply: string;
    try {
      reply = await this.#options.onEtrn({ argument: step.argument, origin: step.origin, user: step.user, clientIp: ip });
    } catch (err) {
      logger.error({ client: ip, user: session.user, err: (err as Error).message }, 'mailq ETRN failed');
      reply = `-ETRN failed: ${(err as Error).message.replace(/[\r\n]/g, ' ')}`;
    }
    write(reply);
  }
}

function nowMicros(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
}

function clientIp(socket: net.Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}
