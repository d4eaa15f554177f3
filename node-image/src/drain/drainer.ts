// Drain (POST /drain, and SIGTERM): close the SMTP listener; in open sessions answer a new
// transaction (MAIL FROM) with 421 once the one under way is done; deliver what can be
// delivered now while those sessions end (bounded wait, then they are closed with 421);
// then hand every message still held, late arrivals included, to a live etrn-cluster peer
// over SMTP with its envelope (sender and pending recipients) and its content unchanged.
// The local copy is marked done only after the peer's 250, so a node killed mid-hand-off
// loses nothing and duplicates at most the messages in flight. With no peer listed (the last
// node of a cluster being deleted) the node delivers them itself on its retry schedule
// instead, and is drained once they are out. The hand-off loop never ends
// while anything is queued (only stop() ends it, and then the mail stays on the spool).
// The node is drained (GET /queue `drained`) only when the listener is closed, no session
// is open, nothing is being spooled and the queue is empty. The peer, not draining, keeps
// the mail under its own routing and never hands it back.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../admin/server.ts';
import { isDrained } from '../admin/queue-report.ts';
import { etrnSettings } from '../etrn/attach.ts';
import type { MailNode } from '../node.ts';
import type { QueuedMessageInfo } from '../delivery/queue.ts';
import { HandoffSender } from './handoff.ts';
import { handoffTargets, nextTarget, targetKey } from './plan.ts';
import type { DrainProgress, DrainState, HandoffTarget } from './plan.ts';

export interface DrainOptions {
  /** Bound on waiting for the delivery flush to settle (default 60 s). */
  flushWaitMs?: number;
  /** Bound on waiting for open SMTP sessions to end before closing them with 421 (default 30 s). */
  sessionWaitMs?: number;
  /** Hand-offs at once (default 8). */
  concurrency?: number;
  /** Pause after a round that moved nothing (default 2 s). */
  retryDelayMs?: number;
  /** How long a peer that failed is left alone (default 5 s). */
  peerRestMs?: number;
  /** Connect/greeting timeout of a hand-off connection (default 10 s). */
  connectTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export class Drainer {
  readonly #node: MailNode;
  readonly #options: Required<DrainOptions>;
  #state: DrainState = 'idle';
  #startedAt: Date | null = null;
  #handedOff = 0;
  #failures = 0;
  #lastError: string | null = null;
  #peers: Record<string, number> = {};
  #resting = new Map<string, number>();
  #last = -1;
  #stopped = false;
  #job: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  /** A SIGTERM's grace period: every bounded wait ends by then. */
  #deadline = Infinity;
  /** No peer is configured: nothing can be handed off (the node delivers directly instead). */
  #nowhereToGo = false;
  readonly #sender: HandoffSender;

  constructor(node: MailNode, options: DrainOptions = {}) {
    this.#node = node;
    this.#options = { flushWaitMs: 60_000, sessionWaitMs: 30_000, concurrency: 8, retryDelayMs: 2000, peerRestMs: 5000, connectTimeoutMs: 10_000, ...definedOnly(options) };
    this.#sender = new HandoffSender(() => ({
      hostname: node.config.hostname,
      localAddress: node.config.outboundAddress,
      proxyNetworks: node.config.proxyProtocol,
      timeoutMs: this.#options.connectTimeoutMs,
      peerTls: node.config.security.peerTls ?? undefined,
    }));
  }

  /** Starts the drain once; later calls only report progress. */
  start(): DrainProgress {
    if (!this.#job) {
      this.#startedAt = new Date();
      this.#node.setDraining(true);
      // from here a new transaction in an open session gets 421
      this.#node.smtp.setAccepting(false);
      this.#node.log.info({ event: 'drain', queued: this.#node.queue.list().length, sessions: this.#node.smtp.sessionCount }, 'drain started');
      this.#job = this.#run().catch((err: Error) => {
        this.#lastError = err.message;
        this.#node.log.error({ event: 'drain', err: err.message }, 'drain failed');
      });
    }
    return this.progress();
  }

  /** True once the node may be deleted: listener closed, no session, nothing queued. */
  get drained(): boolean {
    return this.#job !== null && isDrained(this.#node.queueObservation());
  }

  /**
   * Drains until drained, until nothing more can move (no peer to hand to), or until
   * `deadline` (SIGTERM's grace period), whichever comes first; `abort` ends the wait early.
   * What is not handed off stays on the spool for the next start.
   */
  async drainUntil(deadline: number, abort: () => boolean = () => false): Promise<boolean> {
    this.#deadline = Math.min(this.#deadline, deadline);
    this.start();
    this.#wake?.();
    while (!this.drained && !this.#nowhereToGo && !abort() && Date.now() < this.#deadline && !this.#stopped) await sleep(100);
    return this.drained;
  }

  progress(): DrainProgress {
    return {
      draining: this.#job !== null,
      state: this.#state,
      startedAt: this.#startedAt?.toISOString() ?? null,
      queued: this.#node.queue.list().length,
      handedOff: this.#handedOff,
      handoffFailures: this.#failures,
      peers: { ...this.#peers },
      lastError: this.#lastError,
      drained: this.drained,
      sessions: this.#node.smtp.sessionCount,
      listening: this.#node.smtp.isListening,
    };
  }

  /** Ends the hand-off loop (the node is stopping); what is still queued stays on the spool. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#job;
    this.#sender.close();
  }

  #bound(ms: number): number {
    return Math.min(Date.now() + ms, this.#deadline);
  }

  async #run(): Promise<void> {
    const { queue, smtp } = this.#node;
    // 1. no new connection
    smtp.stopListening();
    // 2. open sessions finish their transactions (bounded), alongside everything below;
    // what they spool late is handed off by the loop, which runs until the node is drained
    void this.#endSessions();
    // 3. what can be delivered now is delivered now
    this.#state = 'delivering';
    for (const domain of Object.keys(queue.summary().domains)) queue.flush({ domain, subdomains: false });
    // (within a SIGTERM at most a third of the grace: a slow destination must not eat the hand-off's time)
    const third = this.#deadline === Infinity ? Infinity : Date.now() + (this.#deadline - Date.now()) / 3;
    await this.#settle(Math.min(this.#bound(this.#options.flushWaitMs), third));
    // 4. no new attempts from here on: what is still queued, late arrivals included, goes to a
    // peer; with no peer listed the node keeps delivering on its own schedule (below)
    queue.pause();
    let announced = false;
    while (!this.#stopped) {
      await queue.retryFinished(); // a DSN that could not be queued before: the original waits for it
      // messages on hold stay here (issue 14): never handed off, and the node is not drained
      // while it holds any (isDrained counts them in total) until they are released or deleted
      const toHandOff = queue.list().filter((m) => !m.inFlight && !m.held && m.recipients.length > 0);
      const onHold = queue.summary().held;
      if (toHandOff.length === 0 && onHold > 0) {
        this.#state = 'handing-off';
        this.#lastError = `${onHold} message(s) on hold: release or delete them to finish the drain`;
        await this.#pause(this.#options.retryDelayMs);
        continue;
      }
      if (toHandOff.length === 0) {
        if (this.drained) {
          this.#state = 'drained';
          if (!announced) this.#node.log.info({ event: 'drain', handedOff: this.#handedOff }, 'drain complete: listener closed, no session, queue empty');
          announced = true;
        }
        // a delivery still running, a transaction still spooling, or a DSN still to queue
        await this.#pause(this.drained ? 1000 : 200);
        continue;
      }
      if (this.#targets().length === 0) {
        // Nobody to hand to (the last node of a cluster being deleted, or a cluster of one):
        // the mail goes out on the node's own retry schedule instead of waiting here for ever.
        this.#nowhereToGo = true;
        this.#state = 'delivering';
        this.#lastError = 'no etrn-cluster peer to hand the mail to: delivering directly';
        if (queue.isPaused) {
          queue.resume();
          this.#node.log.info({ event: 'drain', queued: toHandOff.length }, 'no peer to hand off to: delivering directly');
        }
        await this.#pause(this.#options.retryDelayMs);
        continue;
      }
      this.#nowhereToGo = false;
      if (!queue.isPaused) {
        // peers again (a reload listed some): no new attempts, everything goes to them
        queue.pause();
        this.#node.log.info({ event: 'drain', queued: toHandOff.length }, 'peers listed again: handing off');
      }
      this.#state = 'handing-off';
      const moved = await this.#handOffAll(toHandOff);
      // no pooled connection outlives a round: an idle one would hold the peer's own drain open
      this.#sender.close();
      if (moved === 0) await this.#pause(this.#options.retryDelayMs);
    }
  }

  // waits until no delivery attempt has run for a moment, or the bound passes
  async #settle(until: number): Promise<void> {
    let quiet = 0;
    while (Date.now() < until && quiet < 3 && !this.#stopped) {
      quiet = this.#node.queue.inFlightCount === 0 ? quiet + 1 : 0;
      await sleep(100);
    }
  }

  // waits for open sessions to end; past the bound (within a SIGTERM, half the grace left)
  // closes the rest with 421: nothing they have not been answered 250 for is ours
  async #endSessions(): Promise<void> {
    const { smtp } = this.#node;
    const halfGrace = this.#deadline === Infinity ? Infinity : Date.now() + (this.#deadline - Date.now()) / 2;
    await this.#waitSessions(Math.min(Date.now() + this.#options.sessionWaitMs, halfGrace));
    if (smtp.sessionCount > 0 && !this.#stopped) {
      this.#node.log.warn({ event: 'drain', sessions: smtp.sessionCount }, 'sessions still open after the wait: closing them with 421');
      smtp.closeSessions();
    }
  }

  async #waitSessions(until: number): Promise<void> {
    const { smtp } = this.#node;
    while (Date.now() < until && (smtp.sessionCount > 0 || smtp.transactionsInFlight > 0) && !this.#stopped) await sleep(100);
  }

  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.#wake = () => { clearTimeout(t); resolve(); };
    });
    this.#wake = null;
  }

  #targets(): HandoffTarget[] {
    const config = this.#node.config;
    return handoffTargets(config.etrnCluster, etrnSettings(config, config.bindMailq.port).self, config.bindSmtp.port);
  }

  async #handOffAll(messages: QueuedMessageInfo[]): Promise<number> {
    let moved = 0;
    let next = 0;
    const worker = async () => {
      while (next < messages.length && !this.#stopped) {
        const m = messages[next++];
        if (await this.#handOff(m)) moved++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#options.concurrency, messages.length) }, worker));
    return moved;
  }

  async #handOff(message: QueuedMessageInfo): Promise<boolean> {
    const node = this.#node;
    const targets = this.#targets();
    if (targets.length === 0) {
      this.#lastError = 'no etrn-cluster peer to hand the mail to';
      return false;
    }
    const index = nextTarget(targets, this.#resting, this.#last, Date.now());
    if (index === undefined) return false;
    this.#last = index;
    const target: HandoffTarget = targets[index];
    const key = targetKey(target);
    try {
      const content = await node.queue.readContent(message.id);
      const result = await this.#sender.send(target, message.sender, message.recipients, content);
      // counted as soon as the peer has it (the progress never lags the queue count)
      const complete = result.rejected.length === 0;
      if (complete) {
        this.#handedOff++;
        this.#peers[key] = (this.#peers[key] ?? 0) + 1;
      } else {
        this.#failures++;
        this.#lastError = `${key} refused ${result.rejected.map((r) => r.address).join(', ')}: ${result.rejected[0].response}`;
      }
      node.log.info(
        { event: 'handoff', id: message.id, peer: key, from: message.sender, accepted: result.accepted, rejected: result.rejected, response: result.response },
        'message handed off to a peer',
      );
      if (result.accepted.length > 0) {
        await node.queue.markRecipientsDone(message.id, result.accepted, `handed off to ${key}`).catch((err: Error) => {
          // the peer has it; here it stays and may go out twice (never lost)
          node.log.error({ event: 'handoff', id: message.id, peer: key, err: err.message }, 'handed off, but could not be marked done here');
        });
      }
      return complete;
    } catch (err) {
      const e = err as Error & { responseCode?: number };
      this.#failures++;
      this.#lastError = `${key}: ${e.message}`;
      // a peer that cannot be reached or refuses rests a while; the message goes to another
      this.#resting.set(key, Date.now() + this.#options.peerRestMs);
      node.log.warn({ event: 'handoff', id: message.id, peer: key, err: e.message, code: e.responseCode }, 'hand-off failed, message kept');
      return false;
    }
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  return v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined;
}

/** Registers POST /drain (202 with progress; idempotent) and GET /drain on the admin port. */
export function attachDrain(node: MailNode): Drainer {
  const drainer = new Drainer(node, {
    flushWaitMs: envNumber('MAILCLUSTER_DRAIN_FLUSH_WAIT_MS'),
    concurrency: envNumber('MAILCLUSTER_DRAIN_CONCURRENCY'),
    sessionWaitMs: envNumber('MAILCLUSTER_DRAIN_SESSION_WAIT_MS'),
    retryDelayMs: envNumber('MAILCLUSTER_DRAIN_RETRY_MS'),
    peerRestMs: envNumber('MAILCLUSTER_DRAIN_PEER_REST_MS'),
    connectTimeoutMs: envNumber('MAILCLUSTER_DRAIN_CONNECT_TIMEOUT_MS'),
  });
  node.admin.protectedRoute('POST', '/drain', (_req: IncomingMessage, res: ServerResponse) => sendJson(res, 202, drainer.start()));
  node.admin.route('GET', '/drain', (_req: IncomingMessage, res: ServerResponse) => sendJson(res, 200, drainer.progress()));
  return drainer;
}
