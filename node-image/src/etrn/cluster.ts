// ETRN fan-out over the etrn-cluster peers: the local flush and one MAILQv2 ETRN to every
// other peer, all at once, each with its own timeout. A dead or slow peer costs only its
// own line in the reply; the others flush regardless.
import { isSelfPeer, peerName } from './peers.ts';
import type { EtrnClusterPeer, SelfIdentity } from './peers.ts';
import { formatEtrnTarget } from './parse.ts';
import type { EtrnTarget } from './parse.ts';
import { mailqEtrnReplyLine } from './reply.ts';
import type { FlushResult, NodeOutcome } from './reply.ts';
import type { MailqEtrnOptions, MailqEtrnOutcome } from '../mailq/client.ts';

/** One node's part of a fan-out, for the reply, the log and the metrics. */
export interface PeerOutcome extends NodeOutcome {
  self: boolean;
  result: 'ok' | 'refused' | 'failed';
  started: boolean;
  ms: number;
}

export interface FanOutOptions {
  peers: readonly EtrnClusterPeer[];
  self: SelfIdentity;
  /** This node's name, for the reply line of the local flush when the list does not name us. */
  hostname: string;
  /** `[client-ip]@our-hostname`, sent along with each relayed ETRN. */
  origin: string;
  timeoutMs: number;
  localAddress?: string;
  localFlush: (target: EtrnTarget) => Promise<FlushResult>;
  relay: (options: MailqEtrnOptions) => Promise<MailqEtrnOutcome>;
}

/**
 * Flushes locally and relays to every other peer, concurrently. The outcomes come back in
 * the configuration order; the local flush is reported where the list names this node
 * (first, under our hostname, when it does not).
 */
export async function fanOutEtrn(target: EtrnTarget, options: FanOutOptions): Promise<PeerOutcome[]> {
  const argument = formatEtrnTarget(target);
  const started = Date.now();
  // one local flush however often the list names us
  const local = timed(options.localFlush(target), started).then(
    ({ value, ms }): Omit<PeerOutcome, 'node' | 'self'> => {
      const something = value.started > 0 || (value.inFlight ?? 0) > 0;
      return { result: 'ok', line: mailqEtrnReplyLine(something), started: something, ms };
    },
    (err: Error): Omit<PeerOutcome, 'node' | 'self'> => ({
      result: 'failed',
      line: `-ETRN failed: ${err.message}`,
      started: false,
      ms: Date.now() - started,
    }),
  );

  const listed = options.peers.map((peer) => ({ peer, self: isSelfPeer(peer, options.self) }));
  const jobs: Array<Promise<PeerOutcome>> = listed.map(async ({ peer, self }) => {
    const node = peerName(peer);
    if (self) return { node, self, ...(await local) };
    const t0 = Date.now();
    const request: MailqEtrnOptions = {
      host: peer.host,
      port: peer.port,
      user: peer.user,
      password: peer.password,
      argument,
      origin: options.origin,
      timeoutMs: options.timeoutMs,
      localAddress: options.localAddress,
    };
    const outcome = await options
      .relay(request)
      .catch((err: Error): MailqEtrnOutcome => ({ result: 'failed', line: `Relay failed: ${err.message}` }));
    return { node, self, result: outcome.result, line: outcome.line, started: outcome.started ?? false, ms: Date.now() - t0 };
  });
  if (!listed.some((l) => l.self)) {
    jobs.unshift(local.then((o) => ({ node: options.hostname, self: true, ...o })));
  }
  return Promise.all(jobs);
}

async function timed<T>(promise: Promise<T>, since: number): Promise<{ value: T; ms: number }> {
  const value = await promise;
  return { value, ms: Date.now() - since };
}
