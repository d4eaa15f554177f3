// An in-process SMTP destination (smtp-server) that records every message it
// accepts: envelope, raw content, and the address of the client that delivered it
// (which tells which node sent it). It can be stopped and started again on the
// same address, to play a destination that is down and comes back, and can answer
// a chosen 4xx/5xx at a chosen stage.
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { freePort } from './addresses.ts';
import { atTeardown } from './hooks.ts';
import { waitUntil } from './processes.ts';

export interface CapturedMessage {
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
  /** The client's IP address: which node delivered it. */
  remoteAddress: string;
  heloName: string;
  secure: boolean;
  receivedAt: number;
}

/** A forced reply: `code` (4xx/5xx) at `stage`, for every transaction or only for some recipients. */
export interface CaptureReply {
  stage: 'mail' | 'rcpt' | 'data';
  code: number;
  message?: string;
  /** With stage 'rcpt': only these recipients get the reply (default: all). */
  recipients?: string[];
}

export interface CaptureOptions {
  address: string;
  /** Default: a free port on `address`, kept across stop/start. */
  port?: number;
  hostname?: string;
  reply?: CaptureReply;
  /** Offer STARTTLS (smtp-server's built-in self-signed certificate unless key/cert given). Default: off. */
  tls?: boolean | { key: string | Buffer; cert: string | Buffer };
  /** SIZE limit announced and enforced. */
  size?: number;
  /** Start listening right away (default true). */
  listen?: boolean;
}

/** A refused transaction: what was asked and what it got. */
export interface CaptureRefusal { stage: CaptureReply['stage']; code: number; remoteAddress: string; mailFrom?: string; rcptTo?: string }

export interface CaptureServer {
  address: string;
  port: number;
  messages: CapturedMessage[];
  refusals: CaptureRefusal[];
  /** Connections accepted so far (attempts, for retry tests). */
  connections(): number;
  listening(): boolean;
  setReply(reply: CaptureReply | undefined): void;
  waitForMessages(n: number, timeoutMs?: number): Promise<CapturedMessage[]>;
  clear(): void;
  /** Listen again on the same address and port (a no-op when listening). */
  start(): Promise<void>;
  /** Stop listening and drop open connections at once: the destination is down. */
  stop(): Promise<void>;
}

function smtpError(reply: CaptureReply): Error {
  const err = new Error(reply.message ?? (reply.code >= 500 ? 'rejected by capture server' : 'try again later')) as Error & { responseCode: number };
  err.responseCode = reply.code;
  return err;
}

export async function startCaptureServer(options: CaptureOptions): Promise<CaptureServer> {
  const { address } = options;
  const port = options.port ?? (await freePort(address));
  let reply = options.reply;
  let connectionCount = 0;
  const messages: CapturedMessage[] = [];
  const refusals: CaptureRefusal[] = [];
  let server: SMTPServer | undefined;

  const refuse = (stage: CaptureReply['stage'], session: SMTPServerSession, r: CaptureReply, rcptTo?: string) => {
    refusals.push({ stage, code: r.code, remoteAddress: session.remoteAddress, mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined, rcptTo });
    return smtpError(r);
  };

  const makeServer = () => {
    const tls = options.tls;
    const serverOptions: SMTPServerOptions = {
      name: options.hostname ?? 'capture.test',
      banner: 'capture server',
      authOptional: true,
      disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      logger: false,
      closeTimeout: 100,
      size: options.size,
      ...(typeof tls === 'object' ? { key: tls.key, cert: tls.cert } : {}),
      onConnect(_session, callback) { connectionCount++; callback(); },
      onMailFrom(_address, session, callback) {
        if (reply?.stage === 'mail') return callback(refuse('mail', session, reply));
        callback();
      },
      onRcptTo(rcpt, session, callback) {
        if (reply?.stage === 'rcpt' && (!reply.recipients || reply.recipients.includes(rcpt.address))) {
          return callback(refuse('rcpt', session, reply, rcpt.address));
        }
        callback();
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          if (stream.sizeExceeded) {
            const err = new Error('message too big') as Error & { responseCode: number };
            err.responseCode = 552;
            return callback(err);
          }
          if (reply?.stage === 'data') return callback(refuse('data', session, reply));
          const from = session.envelope.mailFrom;
          messages.push({
            mailFrom: from ? from.address : '',
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks),
            remoteAddress: session.remoteAddress,
            heloName: session.hostNameAppearsAs,
            secure: session.secure,
            receivedAt: Date.now(),
          });
          callback();
        });
      },
    };
    const s = new SMTPServer(serverOptions);
    s.on('error', () => { /* a client's reset: not the test's business */ });
    return s;
  };

  const start = () => new Promise<void>((resolve, reject) => {
    if (server) return resolve();
    const s = makeServer();
    const onError = (err: Error) => reject(err);
    s.server.once('error', onError);
    s.listen(port, address, () => {
      s.server.off('error', onError);
      server = s;
      resolve();
    });
  });

  const stop = () => new Promise<void>((resolve) => {
    const s = server;
    server = undefined;
    if (!s) return resolve();
    // Down means down: refuse new connections now and cut the open ones.
    const open = (s as unknown as { connections?: Set<{ close?: () => void; _socket?: { destroy(): void } }> }).connections;
    s.close(() => resolve());
    for (const conn of open ?? []) conn._socket?.destroy();
  });

  if (options.listen !== false) await start();
  atTeardown(stop);

  return {
    address,
    port,
    messages,
    refusals,
    connections: () => connectionCount,
    listening: () => server !== undefined,
    setReply: (r) => { reply = r; },
    waitForMessages: async (n, timeoutMs = 30000) => {
      await waitUntil(`capture server ${address}:${port} to hold ${n} messages (has ${messages.length})`,
        () => messages.length >= n, { timeoutMs, intervalMs: 20 });
      return messages;
    },
    clear: () => { messages.length = 0; refusals.length = 0; },
    start,
    stop,
  };
}
