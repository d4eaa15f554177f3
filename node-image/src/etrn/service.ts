// ETRN as the node runs it: the SMTP command (rate limit, transaction check, syntax,
// relay-domain check, local flush and cluster fan-out, reply) and the MAILQv2 command
// (local flush only: a relayed ETRN is never relayed again). Logs and metrics here.
import type { Logger } from 'pino';
import { Counter, Histogram, register as defaultRegistry } from 'prom-client';
import type { Registry } from 'prom-client';
import { mailqEtrn } from '../mailq/client.ts';
import type { MailqEtrnOptions, MailqEtrnOutcome } from '../mailq/client.ts';
import type { MailqEtrnRequest } from '../mailq/server.ts';
import { fanOutEtrn } from './cluster.ts';
import { ETRN_IN_TRANSACTION, formatEtrnTarget, isEtrnAllowed, notOurDomain, parseEtrnArgument } from './parse.ts';
import type { EtrnTarget } from './parse.ts';
import type { EtrnClusterPeer, SelfIdentity } from './peers.ts';
import { TokenBucketLimiter } from './rate-limit.ts';
import { EtrnDomainGate } from './domain-gate.ts';
import type { EtrnDomainLimits } from './domain-gate.ts';
import type { TokenBucketOptions } from './rate-limit.ts';
import { cannotQueueReply, clusterEtrnReply, localEtrnReply, mailqEtrnReplyLine, refusalReply } from './reply.ts';
import type { FlushResult, SmtpReply } from './reply.ts';

/** The parts of the node configuration ETRN needs, read afresh for every ETRN (reloads apply). */
export interface EtrnSettings {
  hostname: string;
  relayDomains: readonly string[];
  peers: readonly EtrnClusterPeer[];
  self: SelfIdentity;
  /** Source address for relayed ETRNs (this node's own address), if it has one. */
  localAddress?: string;
  /** Cluster-wide per-domain limits (PARAM etrn-domain-rate-*, etrn-relayed-window); absent: none. */
  domainLimits?: EtrnDomainLimits;
}

export interface EtrnServiceOptions {
  settings: () => EtrnSettings;
  /** Starts delivery of the queued mail for the target on this node. */
  flush: (target: EtrnTarget) => Promise<FlushResult> | FlushResult;
  logger: Logger;
  registry?: Registry;
  /** Per-peer timeout of a relayed ETRN (default 5 s). */
  peerTimeoutMs?: number;
  /** Per-client limit for SMTP ETRN (default: 10 at once, one more every 6 s). */
  rateLimit?: TokenBucketOptions;
  /** MAILQv2 client, replaceable for tests of reply shaping only. */
  relay?: (options: MailqEtrnOptions) => Promise<MailqEtrnOutcome>;
  now?: () => number;
}

export interface SmtpEtrnContext {
  clientIp: string;
  inTransaction: boolean;
}

type EtrnResult = 'started' | 'nothing' | 'not_allowed' | 'bad_syntax' | 'rate_limited' | 'in_transaction' | 'failed' | 'joined' | 'local_only';

export class EtrnService {
  readonly #options: EtrnServiceOptions;
  readonly #limiter: TokenBucketLimiter;
  readonly #etrnTotal: Counter<'source' | 'result'>;
  readonly #relayTotal: Counter<'result'>;
  readonly #fanOutSeconds: Histogram;
  readonly #gate = new EtrnDomainGate();
  /** Fan-outs in flight by target: concurrent ETRNs for one target share one. */
  readonly #inFlight = new Map<string, Promise<SmtpReply>>();

  constructor(options: EtrnServiceOptions) {
    this.#options = options;
    this.#limiter = new TokenBucketLimiter(options.rateLimit ?? { burst: 10, refillSeconds: 6 });
    const registers = [options.registry ?? defaultRegistry];
    this.#etrnTotal = new Counter({
      name: 'mailcluster_etrn_total',
      help: 'ETRN commands received, by source (smtp or mailq) and result.',
      labelNames: ['source', 'result'],
      registers,
    });
    this.#relayTotal = new Counter({
      name: 'mailcluster_etrn_relays_total',
      help: 'ETRNs relayed to etrn-cluster peers over MAILQv2, by result (ok, refused, failed).',
      labelNames: ['result'],
      registers,
    });
    this.#fanOutSeconds = new Histogram({
      name: 'mailcluster_etrn_fanout_seconds',
      help: 'Time from an SMTP ETRN until every cluster node answered or timed out.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  /** Answers `ETRN <args>` received over SMTP. */
  async smtpEtrn(args: string, context: SmtpEtrnContext): Promise<SmtpReply> {
    const { logger } = this.#options;
    if (context.inTransaction) return this.#refused('smtp', 'in_transaction', refusalReply(ETRN_IN_TRANSACTION));
    const parsed = parseEtrnArgument(args);
    if (!parsed.ok) return this.#refused('smtp', 'bad_syntax', refusalReply(parsed.refusal));
    const target = parsed.target;
    const settings = this.#options.settings();
    if (!isEtrnAllowed(target, settings.relayDomains)) {
      logger.warn({ client: context.clientIp, domain: formatEtrnTarget(target) }, 'ETRN refused: not a relay domain');
      return this.#refused('smtp', 'not_allowed', refusalReply(notOurDomain(target)));
    }
    const wait = this.#limiter.take(context.clientIp, (this.#options.now ?? Date.now)());
    if (wait > 0) {
      logger.warn({ client: context.clientIp, domain: formatEtrnTarget(target), retryAfterSeconds: wait }, 'ETRN rate limited');
      return this.#refused('smtp', 'rate_limited', {
        code: 458,
        lines: [`4.7.0 Unable to queue messages for node ${formatEtrnTarget(target)}: too many ETRN requests from ${context.clientIp}, try again in ${wait} s`],
      });
    }

    const key = formatEtrnTarget(target);
    const shared = this.#inFlight.get(key);
    if (shared) {
      this.#etrnTotal.inc({ source: 'smtp', result: 'joined' });
      logger.info({ client: context.clientIp, domain: key }, 'ETRN joined the fan-out in flight for this domain');
      return shared;
    }
    const limits = settings.domainLimits;
    if (limits) {
      const now = (this.#options.now ?? Date.now)();
      const gate = this.#gate.decide(target.domain, now, limits);
      if (gate.kind === 'rate-limited') {
        logger.warn({ client: context.clientIp, domain: key, retryAfterSeconds: gate.retryAfterSeconds }, 'ETRN rate limited for the domain');
        return this.#refused('smtp', 'rate_limited', {
          code: 458,
          lines: [`4.7.0 Unable to queue messages for node ${key}: too many ETRN requests for this domain, try again in ${gate.retryAfterSeconds} s`],
        });
      }
      if (gate.kind === 'local-only' && settings.peers.length > 0) {
        // a peer's fan-out for this domain reached every node moments ago: flush here only
        const run = this.#localOnly(target, context, gate.relayedSecondsAgo);
        return this.#share(key, run);
      }
    }
    return this.#share(key, this.#run(target, context, settings));
  }

  #share(key: string, run: Promise<SmtpReply>): Promise<SmtpReply> {
    const p = run.finally(() => { if (this.#inFlight.get(key) === p) this.#inFlight.delete(key); });
    this.#inFlight.set(key, p);
    return p;
  }

  async #localOnly(target: EtrnTarget, context: SmtpEtrnContext, relayedSecondsAgo: number): Promise<SmtpReply> {
    const { logger } = this.#options;
    try {
      const result = await this.#options.flush(target);
      this.#etrnTotal.inc({ source: 'smtp', result: 'local_only' });
      logger.info({ client: context.clientIp, domain: formatEtrnTarget(target), relayedSecondsAgo, ...result }, 'ETRN flushed locally: a peer relayed one for this domain moments ago');
      return localEtrnReply(target, result);
    } catch (err) {
      this.#etrnTotal.inc({ source: 'smtp', result: 'failed' });
      return cannotQueueReply(target, (err as Error).message);
    }
  }

  async #run(target: EtrnTarget, context: SmtpEtrnContext, settings: EtrnSettings): Promise<SmtpReply> {
    const { logger } = this.#options;
    if (settings.peers.length === 0) {
      try {
        const result = await this.#options.flush(target);
        this.#etrnTotal.inc({ source: 'smtp', result: result.started > 0 ? 'started' : 'nothing' });
        logger.info({ client: context.clientIp, domain: formatEtrnTarget(target), ...result }, 'ETRN flushed locally');
        return localEtrnReply(target, result);
      } catch (err) {
        this.#etrnTotal.inc({ source: 'smtp', result: 'failed' });
        logger.error({ client: context.clientIp, domain: formatEtrnTarget(target), err: (err as Error).message }, 'ETRN failed');
        return cannotQueueReply(target, (err as Error).message);
      }
    }

    const stopTimer = this.#fanOutSeconds.startTimer();
    const outcomes = await fanOutEtrn(target, {
      peers: settings.peers,
      self: settings.self,
      hostname: settings.hostname,
      origin: `[${context.clientIp}]@${settings.hostname}`,
      timeoutMs: this.#options.peerTimeoutMs ?? 5000,
      localAddress: settings.localAddress,
      localFlush: async (t) => this.#options.flush(t),
      relay: this.#options.relay ?? mailqEtrn,
    });
    stopTimer();
    for (const o of outcomes) if (!o.self) this.#relayTotal.inc({ result: o.result });
    const anyStarted = outcomes.some((o) => o.started);
    const allFailed = outcomes.every((o) => o.result === 'failed');
    this.#etrnTotal.inc({ source: 'smtp', result: allFailed ? 'failed' : anyStarted ? 'started' : 'nothing' });
    logger.info(
      {
        client: context.clientIp,
        domain: formatEtrnTarget(target),
        peers: outcomes.map((o) => ({ node: o.node, self: o.self, result: o.result, started: o.started, ms: o.ms, reply: o.line })),
      },
      'ETRN relayed to the cluster',
    );
    return clusterEtrnReply(outcomes);
  }

  /** Answers an ETRN that arrived over MAILQv2: a local flush only, never relayed again. */
  async mailqEtrn(request: MailqEtrnRequest): Promise<string> {
    const { logger } = this.#options;
    const parsed = parseEtrnArgument(request.argument);
    if (!parsed.ok) {
      this.#etrnTotal.inc({ source: 'mailq', result: 'bad_syntax' });
      return `-ETRN ${parsed.refusal.message}`;
    }
    const target = parsed.target;
    const mqSettings = this.#options.settings();
    if (!isEtrnAllowed(target, mqSettings.relayDomains)) {
      this.#etrnTotal.inc({ source: 'mailq', result: 'not_allowed' });
      logger.warn({ client: request.clientIp, user: request.user, domain: formatEtrnTarget(target) }, 'MAILQv2 ETRN refused: not a relay domain');
      return `-ETRN ${notOurDomain(target).message}`;
    }
    if (mqSettings.domainLimits) this.#gate.relayed(target.domain, (this.#options.now ?? Date.now)(), mqSettings.domainLimits);
    const result = await this.#options.flush(target);
    const something = result.started > 0 || (result.inFlight ?? 0) > 0;
    this.#etrnTotal.inc({ source: 'mailq', result: something ? 'started' : 'nothing' });
    logger.info(
      { client: request.clientIp, user: request.user, origin: request.origin, domain: formatEtrnTarget(target), ...result },
      'MAILQv2 ETRN flushed locally',
    );
    return mailqEtrnReplyLine(something);
  }

  #refused(source: 'smtp' | 'mailq', result: EtrnResult, reply: SmtpReply): SmtpReply {
    this.#etrnTotal.inc({ source, result });
    return reply;
  }
}
