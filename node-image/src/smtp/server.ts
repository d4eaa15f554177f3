// Inbound SMTP: our own listener (connection accounting, drain refusal, PROXY v1/v2 from
// trusted networks) hands each socket to the one SMTPServer instance (smtp-server), whose
// handlers apply relay control, limits, loop detection, the Received header, and spool the
// message before the 250.
import net from 'node:net';
import tls from 'node:tls';
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
import { countReceivedHeaders, receivedHeader, relayRefusal, relayVerdict, transmissionProtocol } from './policy.ts';
import { authCommands, effectiveTls, hasRelayRight, hideAuthBeforeTls, keepRecipientPaths, peerContext, rateWindow } from './security-hooks.ts';
import type { RcptAddress } from './security-hooks.ts';
import { installFastDataMode } from './fast-data-mode.ts';
import { DEFAULT_DATA_MEMORY_BUDGET_BYTES, shouldSpill } from './data-spill.ts';
import type { SpillLimits } from './data-spill.ts';
import { authenticate } from './auth.ts';
import type { WindowCounter } from './limits.ts';
import type { SmtpAuthUser } from '../config/security.ts';

installFastDataMode();
import type { RelayPolicy } from './policy.ts';

export interface InboundOptions {
  /** How long a trusted (proxy-protocol) peer may take to send its PROXY header. */
  proxyHeaderTimeoutMs?: number;
  socketTimeoutMs?: number;
  /** Messages larger than this are streamed into their own spool file instead of held in memory (default 256 KiB). */
  blobThresholdBytes?: number;
  /** DATA all sessions may hold in memory before writing it to blob files, together (default 16 MiB; see data-spill.ts). */
  dataMemoryBudgetBytes?: number;
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

/** MAIL FROM's SIZE= (RFC 1870; smtp-server checked its syntax and the maxsize), 0 when absent. */
function declaredSize(args: unknown): number {
  const size = args && typeof args === 'object' ? (args as { SIZE?: unknown }).SIZE : undefined;
  return typeof size === 'string' ? Number(size) : 0;
}

const BLOB_STEP = 64 * 1024;

/** True when `chunk` holds the empty line that ends the header section (countReceivedHeaders stops there). */
function endsHeaderSection(chunk: Buffer | undefined): boolean {
  if (!chunk || chunk.length === 0) return false;
  return chunk[0] === 0x0a || (chunk[0] === 0x0d && chunk[1] === 0x0a) || chunk.indexOf('\n\n') !== -1 || chunk.indexOf('\n\r\n') !== -1;
}

/**
 * A message in one buffer over shared memory: the delivery thread gets it without a copy
 * (postMessage shares a SharedArrayBuffer; it copied 100 KB messages byte by byte).
 */
function concatShared(parts: Buffer[], size: number): Buffer {
  const out = Buffer.from(new SharedArrayBuffer(size));
  let at = 0;
  for (const p of parts) at += p.copy(out, at);
  return out;
}

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
  private readonly spillLimits: SpillLimits;
  /** DATA bytes held in memory by transactions that have not spilled to a blob yet. */
  private dataHeld = 0;
  private hooks: Array<(c: SmtpConnection) => void> = [];
  /**
   * Open client connections: the accepted socket -> the socket the session speaks on now
   * (the TLS socket after STARTTLS). smtp-server's STARTTLS removes every listener from the
   * accepted socket, ours included, so a session is also forgotten by its id when smtp-server
   * reports it closed (onClose): without that, each STARTTLS session stayed counted for good,
   * a drain never saw its sessions end and max-connections filled up.
   */
  private sockets = new Map<Socket, Socket>();
  private socketsBySession = new Map<string, Socket>();
  private bound: { address: string; port: number } | null = null;
  private peerContext: { name: string; context: tls.SecureContext } | null;
  private connectionRate: { window: number; counter: WindowCounter };
  private authFailures: { window: number; counter: WindowCounter };
  /** Closed for good by a drain: a reload must not open it again. */
  private listenerClosed = false;
  /** DATA transactions between the DATA command and their reply (a late arrival may still be spooling). */
  private transactions = 0;
  /** Free-space check at MAIL FROM and at the end of DATA (queue-minfree); null: room. */
  private storageCheck: ((need: number) => Promise<string | null>) | null = null;

  constructor(config: NodeConfig, publicTls: TlsMaterial | null, queue: DeliveryQueue, log: Logger, metrics: Metrics, opts: InboundOptions = {}) {
    const tlsMaterial = effectiveTls(publicTls, config);
    this.peerContext = peerContext(config);
    this.config = config;
    this.queue = queue;
    this.log = log;
    this.metrics = metrics;
    this.proxyTimeoutMs = opts.proxyHeaderTimeoutMs ?? 5000;
    this.spillLimits = {
      thresholdBytes: opts.blobThresholdBytes ?? 256 * 1024,
      stepBytes: BLOB_STEP,
      budgetBytes: opts.dataMemoryBudgetBytes ?? DEFAULT_DATA_MEMORY_BUDGET_BYTES,
    };
    this.policy = this.buildPolicy(config);
    this.isProxyPeer = cidrMatcher(config.proxyProtocol);
    this.connectionRate = rateWindow(config.security.smtpClientConnectionRateTime);
    this.authFailures = rateWindow(config.security.smtpAuthFailureWindow);
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
      disabledCommands: authCommands(tlsMaterial, config),
      hideSTARTTLS: !tlsMaterial,
      ...(tlsMaterial ? { key: tlsMaterial.key, cert: tlsMaterial.cert } : {}),
      // contract 4: a client that asks for peer-tls-name (a peer handing off) gets the peer
      // certificate; everyone else the public one
      SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) =>
        cb(null, this.peerContext && servername === this.peerContext.name ? this.peerContext.context : undefined),
      onConnect: (session, cb) => this.onConnect(session, cb),
      onSecure: (secureSocket, session, cb) => {
        const accepted = this.socketsBySession.get(session.id);
        if (accepted && this.sockets.has(accepted)) this.sockets.set(accepted, secureSocket);
        cb();
      },
      onClose: (session) => {
        const accepted = this.socketsBySession.get(session.id);
        this.socketsBySession.delete(session.id);
        if (accepted) this.forgetSocket(accepted);
      },
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(declaredSize(address.args), session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address as RcptAddress, session, cb),
      onData: (stream, session, cb) => {
        // counted until answered, or until the client goes away mid-DATA (no answer then)
        this.transactions++;
        let counted = true;
        const done = () => { if (counted) { counted = false; this.transactions--; } };
        stream.once('close', () => { if (!stream.readableEnded) done(); });
        this.onData(stream, session, (err, message) => { done(); cb(err, message); });
      },
    };
    this.server = new SMTPServer(options);
    this.server.on('error', (err: Error) => this.log.debug({ err: err.message }, 'smtp connection error'));
    // every connection passes here before init(): our reply-code fix, then extension hooks
    const connections = (this.server as unknown as { connections: Set<SmtpConnection> }).connections;
    const add = connections.add.bind(connections);
    connections.add = (c: SmtpConnection) => {
      this.useOwnEnhancedCodes(c);
      keepRecipientPaths(c);
      hideAuthBeforeTls(c);
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
  configure(config: NodeConfig, publicTls: TlsMaterial | null): void {
    const tlsMaterial = effectiveTls(publicTls, config);
    this.peerContext = peerContext(config);
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
    } else {
      o.hideSTARTTLS = true;
    }
    o.disabledCommands = authCommands(tlsMaterial, config);
    if (this.connectionRate.window !== config.security.smtpClientConnectionRateTime) this.connectionRate = rateWindow(config.security.smtpClientConnectionRateTime);
    if (this.authFailures.window !== config.security.smtpAuthFailureWindow) this.authFailures = rateWindow(config.security.smtpAuthFailureWindow);
  }

  /** Listens (or moves the listener to a new address; open connections stay). */
  async listen(bind: { address: string; port: number }): Promise<void> {
    if (this.listenerClosed) return;
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

  /** Closes the listener for good (drain): no new connection; open sessions continue. */
  stopListening(): void {
    if (this.listenerClosed) return;
    this.listenerClosed = true;
    // close() stops accepting at once; its callback would wait for every open session
    this.listener.close();
    this.log.info({ event: 'listen', service: 'smtp', listening: false }, 'SMTP listener closed');
  }

  get isListening(): boolean {
    return !this.listenerClosed && this.listener.listening;
  }

  /** Open client connections. */
  get sessionCount(): number {
    return this.sockets.size;
  }

  /** DATA bytes held in memory by transactions not yet spilled to a blob (for tests and metrics). */
  get dataHeldBytes(): number {
    return this.dataHeld;
  }

  /** DATA transactions not yet answered. */
  get transactionsInFlight(): number {
    return this.transactions;
  }

  /** Ends every open session with a 421 (a drain's wait for sessions ran out). */
  closeSessions(): void {
    for (const socket of this.sockets.values()) {
      socket.end(`421 4.3.2 ${this.config.hostname} Service shutting down, closing transmission channel\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    }
  }

  /** Sets the free-space check (PARAM queue-minfree): a reason when the spool has no room. */
  setStorageCheck(check: ((need: number) => Promise<string | null>) | null): void {
    this.storageCheck = check;
  }

  // A drain answers a new transaction in an open session with 421 (the one under way
  // finished before); a spool short of space (with the declared SIZE) answers 452 before
  // the client sends data.
  private onMailFrom(declaredSize: number, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (!this.accepting) {
      this.metrics.rejected.inc({ reason: 'draining' });
      return cb(smtpError(421, `4.3.2 ${this.config.hostname} Service not available, closing transmission channel`));
    }
    if (!this.storageCheck) return cb();
    this.storageCheck(declaredSize).then((full) => {
      if (!full) return cb();
      this.metrics.rejected.inc({ reason: 'insufficient storage' });
      this.log.warn({ event: 'smtp', result: 'tempfail', session: session.id, client: session.remoteAddress, reason: full }, 'MAIL FROM refused: spool short of space');
      cb(smtpError(452, '4.3.1 Insufficient system storage'));
    }, () => cb());
  }

  private handleSocket(socket: Socket): void {
    this.metrics.connections.inc();
    this.metrics.connectionsActive.inc();
    this.sockets.set(socket, socket);
    socket.once('close', () => this.forgetSocket(socket));
    socket.on('error', () => {});
    if (!this.accepting) {
      this.refuse(socket, '421 4.3.2 ' + this.config.hostname + ' Service not available, closing transmission channel', 'not accepting');
      return;
    }
    if (this.isProxyPeer(socket.remoteAddress)) {
      this.readProxyHeader(socket);
      return;
    }
    this.startSession(socket, { id: this.nextSessionId() }, normalizeIp(socket.remoteAddress ?? ''));
  }

  /** A client trusted for relaying (relay network or etrn-cluster peer): no greeting pause, no connection rate. */
  private isTrustedClient(ip: string): boolean {
    return this.policy.isRelayNetwork(ip) || this.policy.isPeer(ip);
  }

  // The real client is known (after PROXY). Connection rate (anvil's
  // smtpd_client_connection_rate_limit), then the greeting pause: a client that talks
  // before the greeting (postscreen's pregreet test) gets 554 and is closed; a PROXY header
  // from an address outside proxy-protocol is refused and never believed.
  private startSession(socket: Socket, opts: { id: string; remoteAddress?: string; [k: string]: unknown }, client: string): void {
    const sec = this.config.security;
    const trusted = this.isTrustedClient(client);
    if (!trusted && sec.smtpClientConnectionRateLimit > 0) {
      const n = this.connectionRate.counter.hit(client, Date.now());
      if (n > sec.smtpClientConnectionRateLimit) {
        this.refuse(socket, `421 4.7.0 ${this.config.hostname} Error: too many connections from ${client}`, 'connection rate limit', { connections: n, window: sec.smtpClientConnectionRateTime });
        return;
      }
    }
    // The first chunk is looked at once, before smtp-server sees it (this listener is
    // registered before smtp-server pipes the socket): a PROXY header from an untrusted
    // address is refused, never believed; anything during the greeting pause is an early talker.
    let greeted = false;
    let refused = false;
    socket.once('data', (chunk: Buffer) => {
      if (chunk.length >= 6 && startsLikeProxyHeader(chunk)) {
        refused = true;
        socket.unpipe();
        this.refuse(socket, '421 4.7.0 PROXY protocol not allowed from this address', 'PROXY header from an untrusted address');
      } else if (!greeted) {
        refused = true;
        socket.unpipe();
        this.refuse(socket, `554 5.5.1 ${this.config.hostname} Protocol error: talked before the greeting`, 'early talker', { pauseSeconds: sec.smtpGreetPause });
      }
    });
    const pauseMs = trusted ? 0 : sec.smtpGreetPause * 1000;
    if (pauseMs <= 0) {
      greeted = true;
      this.connectSession(socket, opts);
      return;
    }
    // sockets waiting out the pause count toward max-connections too (smtp-server counts
    // only the ones it has), so a connection flood cannot hold more than that
    if (this.sockets.size > this.config.maxConnections) {
      refused = true;
      this.refuse(socket, `421 4.3.2 ${this.config.hostname} Too many connected clients, try again in a moment`, 'too many connections');
      return;
    }
    setTimeout(() => {
      if (refused || socket.destroyed) return;
      greeted = true;
      this.connectSession(socket, opts);
    }, pauseMs).unref();
  }

  private forgetSocket(accepted: Socket): void {
    if (this.sockets.delete(accepted)) this.metrics.connectionsActive.dec();
  }

  /** Hands a socket to smtp-server as session `opts.id`. */
  private connectSession(socket: Socket, opts: { id: string; remoteAddress?: string; [k: string]: unknown }): void {
    this.socketsBySession.set(opts.id, socket);
    this.server.connect(socket, opts);
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
        const opts: { id: string; remoteAddress?: string; [k: string]: unknown } = r.command === 'proxy' && r.source
          ? { id: this.nextSessionId(), remoteAddress: r.source.address, remotePort: r.source.port, ...(r.destination ? { localAddress: r.destination.address, localPort: r.destination.port } : {}) }
          : { id: this.nextSessionId() };
        this.startSession(socket, opts, normalizeIp(opts.remoteAddress ?? socket.remoteAddress ?? ''));
        return;
      }
    };
    socket.on('readable', onReadable);
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    cb();
  }

  // SMTP AUTH against PARAM smtp-auth-users only (never scheduler.auth / etrn-cluster: those
  // are MAILQv2 credentials). Each failure waits smtp-auth-failure-delay (Postfix's
  // smtpd_error_sleep_time); smtp-auth-failure-limit failures from one client within the
  // window get 421 and the connection closed, and that client's AUTH stays refused until
  // the window has passed.
  private onAuth(auth: { method: string; username?: string | null; password?: string | null }, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: { user?: unknown }) => void): void {
    const sec = this.config.security;
    const users = sec.smtpAuthUsers ?? [];
    const client = normalizeIp(session.remoteAddress);
    const limit = sec.smtpAuthFailureLimit;
    const blocked = () => limit > 0 && this.authFailures.counter.count(client, Date.now()) >= limit;
    if (blocked()) {
      this.metrics.rejected.inc({ reason: 'auth rate limit' });
      this.log.warn({ event: 'smtp', result: 'auth-blocked', client, user: auth.username }, 'AUTH refused: too many failed attempts');
      return cb(smtpError(421, `4.7.0 ${this.config.hostname} Error: too many failed AUTH attempts from ${client}, try again later`));
    }
    void authenticate(users, auth.username ?? '', auth.password ?? '').then((user: SmtpAuthUser | null) => {
      if (user) {
        this.authFailures.counter.clear(client);
        this.log.info({ event: 'smtp', result: 'auth-ok', client, user: user.user, relay: user.relay }, 'authenticated');
        return cb(null, { user: { username: user.user, relay: user.relay } });
      }
      const failures = this.authFailures.counter.hit(client, Date.now());
      this.metrics.rejected.inc({ reason: 'auth failed' });
      this.log.info({ event: 'smtp', result: 'auth-failed', client, user: auth.username, failures }, 'authentication failed');
      setTimeout(() => {
        if (blocked()) return cb(smtpError(421, `4.7.0 ${this.config.hostname} Error: too many failed AUTH attempts from ${client}, try again later`));
        cb(smtpError(535, '5.7.8 Authentication credentials invalid'));
      }, sec.smtpAuthFailureDelay * 1000).unref();
    }, (err: Error) => {
      this.log.error({ event: 'smtp', result: 'auth-error', client, err: err.message }, 'authentication error');
      cb(smtpError(454, '4.7.0 Temporary authentication failure'));
    });
  }

  private onRcptTo(rcpt: RcptAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const address = rcpt.address;
    if (session.envelope.rcptTo.length >= this.config.maxRecipients) {
      this.metrics.rejected.inc({ reason: 'too many recipients' });
      return cb(smtpError(452, '4.5.3 Too many recipients'));
    }
    const v = relayVerdict(rcpt.rawPath ?? address, session.remoteAddress, hasRelayRight(session.user), this.policy);
    if (!v.ok) {
      const reason = v.routed ? `sender-specified routing (${v.routed})` : 'relaying denied';
      this.metrics.rejected.inc({ reason: v.routed ? 'routing' : 'relaying denied' });
      this.log.info({ event: 'smtp', result: 'rejected', session: session.id, client: session.remoteAddress, from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined, rcpt: rcpt.rawPath ?? address, reason }, 'recipient refused');
      const r = relayRefusal(v, rcpt.rawPath ?? address);
      return cb(smtpError(r.code, r.message));
    }
    if (rcpt.unparsable) return cb(smtpError(501, '5.1.3 Bad recipient address syntax'));
    cb();
  }

  // DATA: a message's first bytes (up to the blob threshold) are held in memory; a small
  // message goes to the spool's group commit as one record. A larger one is streamed into
  // its own blob file as it arrives (the socket waits while a write is pending), so a
  // session holds at most about the threshold however large its message, and all sessions
  // together about the data memory budget (data-spill.ts). Either way the 250 comes only
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
      if (hops >= 0) return;
      if (chunks.length === 1 || endsHeaderSection(chunks[0])) { hops = countReceivedHeaders(chunks[0]); return; }
      let n = 0;
      const head: Buffer[] = [];
      for (const c of chunks) { head.push(c); n += c.length; if (n >= 64 * 1024) break; }
      hops = countReceivedHeaders(Buffer.concat(head));
    };
    // this transaction's share of dataHeld (until its first spill, or its end)
    let counted = 0;
    const uncount = () => { this.dataHeld -= counted; counted = 0; };
    const spill = () => {
      countHops();
      uncount();
      const out = chunks;
      chunks = [];
      spilled += out.reduce((n, c) => n + c.length, 0);
      stream.pause();
      spilling = spilling.then(async () => {
        if (blobError) return;
        if (!blob) {
          blob = await this.queue.createBlob(id);
          out.unshift(headerBuf);
        }
        await blob.write(out);
      }).catch((err: Error) => { blobError = err; }).finally(() => { if (!ended) stream.resume(); });
    };
    let discarded = false;
    const discard = () => {
      if (discarded) return;
      discarded = true;
      chunks = [];
      uncount();
      void spilling.then(() => blob?.abort());
    };
    stream.on('data', (c: Buffer) => {
      if (stream.sizeExceeded || discarded) { discard(); return; }
      chunks.push(c);
      length += c.length;
      if (spilled === 0) { counted += c.length; this.dataHeld += c.length; }
      // past the threshold (or the budget): written on in steps of BLOB_STEP (one step in memory per session)
      if (shouldSpill(length - spilled, spilled > 0, this.dataHeld, this.spillLimits)) spill();
    });
    stream.once('close', () => { if (!ended) discard(); }); // the client went away mid-DATA
    stream.on('end', () => {
      ended = true;
      uncount();
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
      // space may have gone while the client sent the data: refuse rather than fill the disk
      const room = this.storageCheck ? this.storageCheck(0).then((full) => { if (full) throw Object.assign(new Error(full), { code: 'ENOSPC' }); }) : Promise.resolve();
      let stored: Promise<unknown>;
      if (spilled === 0) {
        stored = room.then(() => this.queue.accept(from, rcpts, concatShared([headerBuf, ...chunks], size), { id, clientAddress: session.remoteAddress }));
      } else {
        spill();
        stored = room.then(() => spilling).then(async () => {
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
      }, (err: NodeJS.ErrnoException) => {
        this.log.error({ ...base, result: 'tempfail', err: err.message }, 'transaction');
        cb(err.code === 'ENOSPC' ? smtpError(452, '4.3.1 Insufficient system storage') : smtpError(451, '4.3.0 Local error: could not queue the message'));
      });
    });
  }

  /** Stops listening and closes open sessions. */
  async close(): Promise<void> {
    await new Promise<void>((r) => this.listener.close(() => r()));
    for (const [accepted, current] of this.sockets) { current.destroy(); accepted.destroy(); }
    (this.server.options as SMTPServerOptions).closeTimeout = 1;
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
