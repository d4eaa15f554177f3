// Drain (POST /drain): stop accepting, deliver what can be delivered (one flush of
// everything), then hand every message still held to a live etrn-cluster peer over SMTP
// with its envelope (sender and pending recipients) and its content unchanged. The local
// copy is marked done only after the peer's 250, so a node killed mid-hand-off loses
// nothing and duplicates at most the messages in flight. The peer, not draining, keeps
// the mail under its own routing and never hands it back.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../admin/server.ts';
import { etrnSettings } from '../etrn/attach.ts';
import type { MailNode } from '../node.ts';
import type { QueuedMessageInfo } from '../delivery/queue.ts';
import { HandoffSender } from './handoff.ts';
import { handoffTargets, nextTarget, targetKey } from './plan.ts';
import type { DrainProgress, DrainState, HandoffTarget } from './plan.ts';

export interface DrainOptions {
  /** Bound on waiting for the delivery flush to settle (default 60 s). */
  flushWaitMs?: number;
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
  readonly #sender: HandoffSender;

  constructor(node: MailNode, options: DrainOptions = {}) {
    this.#node = node;
    this.#options = { flushWaitMs: 60_000, concurrency: 8, retryDelayMs: 2000, peerRestMs: 5000, connectTimeoutMs: 10_000, ...definedOnly(options) };
    this.#sender = new HandoffSender(() => ({
      hostname: node.config.hostname,
      localAddress: node.config.outboundAddress,
      proxyNetworks: node.config.proxyProtocol,
      timeoutMs: this.#options.connectTimeoutMs,
    }));
  }

  /** Starts the drain once; later calls only report progress. */
  start(): DrainProgress {
    if (!this.#job) {
      this.#startedAt = new Date();
      this.#node.setDraining(true);
      this.#node.smtp.setAccepting(false);
      this.#node.log.info({ event: 'drain', queued: this.#node.queue.list().length }, 'drain started');
      this.#job = this.#run().catch((err: Error) => {
        this.#lastError = err.message;
        this.#node.log.error({ event: 'drain', err: err.message }, 'drain failed');
      });
    }
    return this.progress();
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
    };
  }

  /** Ends the hand-off loop (the node is stopping). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#job;
    this.#sender.close();
  }

  async #run(): Promise<void> {
    const { queue } = this.#node;
    // 1. one flush of everything: what can be delivered now is delivered now
    this.#state = 'delivering';
    for (const domain of Object.keys(queue.summary().domains)) queue.flush({ domain, subdomains: false });
    await this.#settle(this.#options.flushWaitMs);
    // 2. no new attempts from here on: what is still queued is held, and goes to a peer
    queue.pause();
    await queue.waitIdle();
    while (!this.#stopped) {
      // messages on hold stay here (issue 14): the node does not report drained while it holds any
      const held = queue.list().filter((m) => !m.inFlight && !m.held && m.recipients.length > 0);
      const onHold = queue.summary().held;
      if (held.length === 0 && onHold > 0) {
        this.#state = 'handing-off';
        this.#lastError = `${onHold} message(s) on hold: release or delete them to finish the drain`;
        await this.#pause(this.#options.retryDelayMs);
        continue;
      }
      if (held.length === 0) {
        if (this.#state !== 'drained') this.#node.log.info({ event: 'drain', handedOff: this.#handedOff }, 'drain complete: queue empty');
        this.#state = 'drained';
        await this.#pause(1000); // late arrivals from sessions that were open when the drain began
        continue;
      }
      this.#state = 'handing-off';
      const moved = await this.#handOffAll(held);
      if (moved === 0) await this.#pause(this.#options.retryDelayMs);
    }
  }

  // waits until no delivery attempt has run for a moment, or the bound passes
  async #settle(boundMs: number): Promise<void> {
    const until = Date.now() + boundMs;
    let quiet = 0;
    while (Date.now() < until && quiet < 3 && !this.#stopped) {
      quiet = this.#node.queue.inFlightCount === 0 ? quiet + 1 : 0;
      await sleep(100);
    }
  }

  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.#wake = () => { clearTimeout(t); resolve(); };
    });
    this.#wake = null;
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
    const config = node.config;
    const targets = handoffTargets(config.etrnCluster, etrnSettings(config, config.bindMailq.port).self, config.bindSmtp.port);
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
      if (result.accepted.length > 0) {
        await node.queue.markRecipientsDone(message.id, result.accepted, `handed off to ${key}`);
      }
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
    retryDelayMs: envNumber('MAILCLUSTER_DRAIN_RETRY_MS'),
    peerRestMs: envNumber('MAILCLUSTER_DRAIN_PEER_REST_MS'),
    connectTimeoutMs: envNumber('MAILCLUSTER_DRAIN_CONNECT_TIMEOUT_MS'),
  });
  node.admin.route('POST', '/drain', (_req: IncomingMessage, res: ServerResponse) => sendJson(res, 202, drainer.start()));
  node.admin.route('GET', '/drain', (_req: IncomingMessage, res: ServerResponse) => sendJson(res, 200, drainer.progress()));
  return drainer;
}
