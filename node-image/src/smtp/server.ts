// Inbound SMTP: our own listener (connection accounting, drain refusal, PROXY v1/v2 from
// trusted networks) hands each socket to the one SMTPServer instance (smtp-server), whose
// handlers apply relay control, limits, loop detection, the Received header, and spool the
// message before the 250.
import net from 'node:net';
import type { Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.ts';
import type { TlsMaterial } from '../config/load.ts';
import type { NodeConfig } from '../config/types.ts';
import { cidrMatcher, normalizeIp } from '../net/cidr.ts';
import { parseProxyHeader, startsLikeProxyHeader } from '../proxy/parse.ts';
import type { DeliveryQueue } from '../delivery/queue.ts';
import type { BlobWriter } from '../spool/spool.ts';
import { newMessageId } from '../delivery/queue.ts';
import { countReceivedHeaders, receivedHeader, relayVerdict, transmissionProtocol } from './policy.ts';
import { installFastDataMode } from './fast-data-mode.ts';

installFastDataMode();
import type { RelayPolicy } from './policy.ts';

export interface InboundOptions {
  /** How long a trusted (proxy-protocol) peer may take to send its PROXY header. */
  proxyHeaderTimeoutMs?: number;
  socketTimeoutMs?: number;
  /** Messages larger than this are streamed into their own spool file instead of held in memory (default 256 KiB). */
  blobThresholdBytes?: number;
}

/** An smtp-server connection object, as far as hooks need it (see onConnection). */
export type SmtpConnection = {
  id: string;
  remoteAddress: string;
  session: SMTPServerSession;
  send: (code: number, data?: string | string[], context?: string | false) => void;
  [key: string]: unknown;
};

type SmtpError = Error & { responseCode?: number };

function smtpError(code: number, message: string): SmtpError {
  const e: SmtpError = new Error(message);
  e.responseCode = code;
  return e;
}

const BLOB_STEP = 64 * 1024;

const ENHANCED_PREFIX = /^([245]\.\d{1,3}\.\d{1,3}) ([\s\S]*)$/;

export class InboundSmtp {
  /** The single SMTPServer instance. Extensions (ETRN) patch connections via onConnection. */
  readonly server: SMTPServer;
  private listener: net.Server;
  private config: NodeConfig;
  private policy: RelayPolicy;
  private isProxyPeer: (ip: string | undefined) => boolean;
  private accepting = true;
  private readonly queue: DeliveryQueue;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly proxyTimeoutMs: number;
  private readonly blobThreshold: number;
  private hooks: Array<(c: SmtpConnection) => void> = [];
  private sockets = new Set<Socket>();
  private bound: { address: string; port: number } | null = null;

  constructor(config: NodeConfig, tlsMaterial: TlsMaterial | null, queue: DeliveryQueue, log: Logger, metrics: Metrics, opts: InboundOptions = {}) {
    this.config = config;
    this.queue = queue;
    this.log = log;
    this.metrics = metrics;
    this.proxyTimeoutMs = opts.proxyHeaderTimeoutMs ?? 5000;
    this.blobThreshold = opts.blobThresholdBytes ?? 256 * 1024;
    this.policy = this.buildPolicy(config);
    this.isProxyPeer = cidrMatcher(config.proxyProtocol);
    const options: SMTPServerOptions = {
      name: config.hostname,
      banner: 'mailcluster',
      size: config.maxSize,
      hideSize: false,
      hideENHANCEDSTATUSCODES: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      hideDSN: true,
      disableReverseLookup: true,
      authOptional: true,
      authMethods: ['PLAIN', 'LOGIN'],
      allowInsecureAuth: false,
      maxClients: config.maxConnections,
      socketTimeout: opts.socketTimeoutMs ?? 60_000,
      logger: false,
      disabledCommands: tlsMaterial ? [] : ['STARTTLS', 'AUTH'],
      hideSTARTTLS: !tlsMaterial,
      ...(tlsMaterial ? { key: tlsMaterial.key, cert: tlsMaterial.cert } : {}),
      onConnect: (session, cb) => this.onConnect(session, cb),
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onMailFrom: (address, session, cb) => cb(),
      onRcptTo: (address, session, cb) => this.onRcptTo(address.address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    };
    this.server = new SMTPServer(options);
    this.server.on('error', (err: Error) => this.log.debug({ err: err.message }, 'smtp connection error'));
    // every connection passes here before init(): our reply-code fix, then extension hooks
    const connections = (this.server as unknown as { connections: Set<SmtpConnection> }).connections;
    const add = connections.add.bind(connections);
    connections.add = (c: SmtpConnection) => {
      this.useOwnEnhancedCodes(c);
      this.greetWithoutDelay(c);
      for (const h of this.hooks) h(c);
      return add(c);
    };
    this.listener = net.createServer((socket) => this.handleSocket(socket));
  }

  /** Registers a hook called with every new smtp-server connection before it starts (ETRN patches its commands here). */
  onConnection(hook: (c: SmtpConnection) => void): void {
    this.hooks.push(hook);
  }

  // A reply text that starts with its own enhanced code (`5.7.1 Relaying denied`) keeps it,
  // instead of smtp-server's per-reply-code default (which says 5.1.1 for any 550).
  private useOwnEnhancedCodes(c: SmtpConnection): void {
    const send = c.send.bind(c);
    c.send = (code, data, context) => {
      if (typeof data === 'string' && context !== false) {
        const m = ENHANCED_PREFIX.exec(data);
        if (m) return send(code, `${m[1]} ${m[2]}`, false);
      }
      return send(code, data, context);
    };
  }

  // smtp-server waits 100 ms before the greeting to catch early talkers; with one
  // connection per message that caps a client at 10 messages/s per session. We greet at
  // once and catch the early talker that matters (a PROXY header from an untrusted
  // address) in handleSocket instead.
  private greetWithoutDelay(c: SmtpConnection): void {
    type Internals = {
      _setListeners(cb: () => void): void;
      _server: { options: SMTPServerOptions; connections: Set<unknown> };
      name: string;
      connectionReady(): void;
      send(code: number, data: string, context: false): void;
    };
    c.init = function (this: Internals) {
      this._setListeners(() => {
        const max = this._server.options.maxClients;
        if (max && this._server.connections.size > max) {
          return this.send(421, `4.3.2 ${this.name} Too many connected clients, try again in a moment`, false);
        }
        this.connectionReady();
      });
    };
  }

  private buildPolicy(config: NodeConfig): RelayPolicy {
    const peers = new Set(config.etrnCluster.map((p) => p.host).filter((h) => net.isIP(h)).map((h) => normalizeIp(h)));
    const relayNet = cidrMatcher(config.relayNetworks);
    return {
      relayDomains: new Set(config.relayDomains),
      isRelayNetwork: (ip) => relayNet(ip),
      isPeer: (ip) => peers.has(normalizeIp(ip)),
    };
  }

  /** Applies a reloaded config to new transactions; open connections stay. */
  configure(config: NodeConfig, tlsMaterial: TlsMaterial | null): void {
    this.config = config;
    this.policy = this.buildPolicy(config);
    this.isProxyPeer = cidrMatcher(config.proxyProtocol);
    const o = this.server.options as SMTPServerOptions & { disabledCommands: string[] };
    o.name = config.hostname;
    o.size = config.maxSize;
    o.maxClients = config.maxConnections;
    if (tlsMaterial) {
      this.server.updateSecureContext({ key: tlsMaterial.key, cert: tlsMaterial.cert });
      o.hideSTARTTLS = false;
      o.disabledCommands = o.disabledCommands.filter((c) => c !== 'STARTTLS' && c !== 'AUTH');
    } else {
      o.hideSTARTTLS = true;
      o.disabledCommands = [...new Set([...o.disabledCommands, 'STARTTLS', 'AUTH'])];
    }
  }

  /** Listens (or moves the listener to a new address; open connections stay). */
  async listen(bind: { address: string; port: number }): Promise<void> {
    if (this.bound && this.bound.address === bind.address && this.bound.port === bind.port) return;
    const next = net.createServer((socket) => this.handleSocket(socket));
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(bind.port, bind.address, () => { next.off('error', reject); resolve(); });
    });
    const old = this.bound ? this.listener : null;
    this.listener = next;
    this.bound = bind;
    old?.close();
    this.log.info({ event: 'listen', service: 'smtp', address: bind.address, port: (next.address() as net.AddressInfo).port }, 'SMTP listening');
  }

  get address(): net.AddressInfo | null {
    return this.listener.address() as net.AddressInfo | null;
  }

  /** false: new connections get 421 and are closed (drain); open sessions continue. */
  setAccepting(accepting: boolean): void {
    this.accepting = accepting;
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  private handleSocket(socket: Socket): void {
    this.metrics.connections.inc();
    this.metrics.connectionsActive.inc();
    this.sockets.add(socket);
    socket.once('close', () => { this.metrics.connectionsActive.dec(); this.sockets.delete(socket); });
    socket.on('error', () => {});
    if (!this.accepting) {
      this.refuse(socket, '421 4.3.2 ' + this.config.hostname + ' Service not available, closing transmission channel', 'not accepting');
      return;
    }
    if (this.isProxyPeer(socket.remoteAddress)) {
      this.readProxyHeader(socket);
      return;
    }
    // a PROXY header from an address not in proxy-protocol: refused, never believed.
    // (Registered before smtp-server pipes the socket, so this listener sees the first chunk first.)
    socket.once('data', (chunk: Buffer) => {
      if (chunk.length >= 6 && startsLikeProxyHeader(chunk)) {
        socket.unpipe();
        this.refuse(socket, '421 4.7.0 PROXY protocol not allowed from this address', 'PROXY header from an untrusted address');
      }
    });
    this.server.connect(socket, { id: this.nextSessionId() });
  }

  private sessionSeq = 0;
  private readonly sessionTag = Math.random().toString(36).slice(2, 8);
  // smtp-server draws 10 random bytes per connection otherwise
  private nextSessionId(): string {
    this.sessionSeq = (this.sessionSeq + 1) % 0x7fffffff;
    return `${this.sessionTag}${this.sessionSeq.toString(36)}`;
  }

  private refuse(socket: Socket, line: string, reason: string, details: Record<string, unknown> = {}): void {
    this.metrics.rejected.inc({ reason: reason.split(':')[0] });
    this.log.info({ event: 'smtp', result: 'refused', client: socket.remoteAddress, reason, ...details }, 'connection refused');
    socket.end(line + '\r\n');
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  // Reads the PROXY header ourselves (smtp-server reads only v1), then hands the socket on
  // with the real client address.
  private readProxyHeader(socket: Socket): void {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = () => {
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
    };
    const timer = setTimeout(() => {
      if (done) return;
      finish();
      this.refuse(socket, '421 4.7.0 PROXY protocol header expected', 'no PROXY header from a proxy-protocol peer');
    }, this.proxyTimeoutMs);
    const onReadable = () => {
      if (done) return;
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        buf = Buffer.concat([buf, chunk]);
        const r = parseProxyHeader(buf);
        if (r.kind === 'incomplete') continue;
        finish();
        if (r.kind === 'invalid') {
          this.refuse(socket, '421 4.7.0 PROXY protocol header expected', `bad PROXY header: ${r.reason}`);
          return;
        }
        const rest = buf.subarray(r.length);
        if (rest.length > 0) socket.unshift(rest);
        const opts = r.command === 'proxy' && r.source
          ? { id: this.nextSessionId(), remoteAddress: r.source.address, remotePort: r.source.port, ...(r.destination ? { localAddress: r.destination.address, localPort: r.destination.port } : {}) }
          : { id: this.nextSessionId() };
        this.server.connect(socket, opts);
        return;
      }
    };
    socket.on('readable', onReadable);
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    cb();
  }

  private onAuth(auth: { method: string; username?: string | null; password?: string | null }, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: { user?: unknown }) => void): void {
    const ok = auth.username != null && auth.password != null && (
      this.config.schedulerAuth.some((a) => a.user === auth.username && a.password === auth.password) ||
      this.config.etrnCluster.some((p) => p.user === auth.username && p.password === auth.password));
    if (!ok) {
      this.log.info({ event: 'smtp', result: 'auth-failed', client: session.remoteAddress, user: auth.username }, 'authentication failed');
      return cb(smtpError(535, '5.7.8 Authentication credentials invalid'));
    }
    cb(null, { user: auth.username });
  }

  private onRcptTo(address: string, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (session.envelope.rcptTo.length >= this.config.maxRecipients) {
      this.metrics.rejected.inc({ reason: 'too many recipients' });
      return cb(smtpError(452, '4.5.3 Too many recipients'));
    }
    const v = relayVerdict(address, session.remoteAddress, !!session.user, this.policy);
    if (!v.ok) {
      this.metrics.rejected.inc({ reason: 'relaying denied' });
      this.log.info({ event: 'smtp', result: 'rejected', session: session.id, client: session.remoteAddress, from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined, rcpt: address, reason: 'relaying denied' }, 'recipient refused');
      return cb(smtpError(550, '5.7.1 Relaying denied'));
    }
    cb();
  }

  // DATA: a message's first `blobThreshold` bytes are held in memory; a small message goes
  // to the spool's group commit as one record. A larger one is streamed into its own blob
  // file as it arrives (the socket waits while a write is pending), so a session holds at
  // most about the threshold however large its message. Either way the 250 comes only
  // after fdatasync (blob file, its directory entry, then the envelope record).
  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    const id = newMessageId();
    const rcpts = session.envelope.rcptTo.map((r) => r.address);
    const headerBuf = Buffer.from(receivedHeader({
      helo: session.hostNameAppearsAs || 'unknown',
      clientIp: session.remoteAddress,
      hostname: this.config.hostname,
      protocol: transmissionProtocol(session.openingCommand !== 'HELO', !!session.secure, !!session.user),
      id,
      recipient: rcpts.length === 1 ? rcpts[0] : undefined,
      date: new Date(),
    }), 'latin1');
    let chunks: Buffer[] = [];
    let length = 0;
    let hops = -1;
    let blob: BlobWriter | null = null;
    let spilled = 0;
    let spilling: Promise<void> = Promise.resolve();
    let blobError: Error | null = null;
    let ended = false;
    const countHops = () => {
      // the hop count needs only the header section, which is at the start of the first chunks
      if (hops < 0) hops = countReceivedHeaders(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks.slice(0, 4)));
    };
    const spill = () => {
      countHops();
      const out = chunks;
      chunks = [];
      spilled += out.reduce((n, c) => n + c.length, 0);
      stream.pause();
      spilling = spilling.then(async () => {
        if (blobError) return;
        if (!blob) {
          blob = await this.queue.createBlob(id);
          await blob.write(headerBuf);
        }
        for (const c of out) await blob.write(c);
      }).catch((err: Error) => { blobError = err; }).finally(() => { if (!ended) stream.resume(); });
    };
    let discarded = false;
    const discard = () => {
      if (discarded) return;
      discarded = true;
      chunks = [];
      void spilling.then(() => blob?.abort());
    };
    stream.on('data', (c: Buffer) => {
      if (stream.sizeExceeded || discarded) { discard(); return; }
      chunks.push(c);
      length += c.length;
      // past the threshold: written on in steps of BLOB_STEP (one step in memory per session)
      if (length - spilled >= (spilled ? BLOB_STEP : this.blobThreshold)) spill();
    });
    stream.once('close', () => { if (!ended) discard(); }); // the client went away mid-DATA
    stream.on('end', () => {
      ended = true;
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const base = { event: 'smtp', session: session.id, client: session.remoteAddress, tls: !!session.secure, from, rcpts };
      if (stream.sizeExceeded) {
        discard();
        this.metrics.rejected.inc({ reason: 'too big' });
        this.log.info({ ...base, result: 'rejected', reason: 'message too big', size: stream.byteLength }, 'transaction');
        return cb(smtpError(552, '5.3.4 Message too big'));
      }
      countHops();
      if (hops >= this.config.maxReceivedHeaders) {
        discard();
        this.metrics.rejected.inc({ reason: 'loop' });
        this.log.info({ ...base, result: 'rejected', reason: 'too many Received headers', hops }, 'transaction');
        return cb(smtpError(554, `5.4.6 Too many hops (${hops} Received headers): mail loop`));
      }
      const size = headerBuf.length + length;
      let stored: Promise<unknown>;
      if (spilled === 0) {
        stored = this.queue.accept(from, rcpts, Buffer.concat([headerBuf, ...chunks], size), { id, clientAddress: session.remoteAddress });
      } else {
        spill();
        stored = spilling.then(async () => {
          if (blobError || !blob) throw blobError ?? new Error('no blob');
          const done = await blob.finish();
          if (done.length !== size) throw new Error(`blob holds ${done.length} of ${size} bytes`);
          return this.queue.acceptBlob(from, rcpts, done, { id, clientAddress: session.remoteAddress });
        });
        stored.catch(() => discard());
      }
      stored.then(() => {
        this.metrics.received.inc();
        this.log.info({ ...base, result: 'accepted', id, size, streamed: spilled > 0 }, 'transaction');
        cb(null, `2.0.0 Ok: queued as ${id}`);
      }, (err: Error) => {
        this.log.error({ ...base, result: 'tempfail', err: err.message }, 'transaction');
        cb(smtpError(451, '4.3.0 Local error: could not queue the message'));
      });
    });
  }

  /** Stops listening and closes open sessions. */
  async close(): Promise<void> {
    await new Promise<void>((r) => this.listener.close(() => r()));
    for (const s of this.sockets) s.destroy();
    (this.server.options as SMTPServerOptions).closeTimeout = 1;
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
