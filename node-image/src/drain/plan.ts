// Pure decisions of a drain: which peers may take handed-off mail, which one gets the
// next message, and how progress is reported.
import { isSelfPeer, normalizeAddress } from '../etrn/peers.ts';
import type { EtrnClusterPeer, SelfIdentity } from '../etrn/peers.ts';

/** A peer's inbound SMTP listener. */
export interface HandoffTarget {
  host: string;
  port: number;
}

/**
 * The etrn-cluster peers other than this node, each at the SMTP port every node of the
 * cluster uses (the cluster renders the same BindSmtp port for all), once per host.
 */
export function handoffTargets(peers: readonly EtrnClusterPeer[], self: SelfIdentity, smtpPort: number): HandoffTarget[] {
  const seen = new Set<string>();
  const out: HandoffTarget[] = [];
  for (const p of peers) {
    if (isSelfPeer(p, self)) continue;
    const key = normalizeAddress(p.host);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ host: p.host, port: smtpPort });
  }
  return out;
}

/**
 * The next target in rotation that is not resting after a failure, starting after `last`;
 * undefined when every target rests.
 */
export function nextTarget(targets: readonly HandoffTarget[], restingUntil: ReadonlyMap<string, number>, last: number, now: number): number | undefined {
  for (let step = 1; step <= targets.length; step++) {
    const i = (last + step) % targets.length;
    if ((restingUntil.get(targetKey(targets[i])) ?? 0) <= now) return i;
  }
  return undefined;
}

export function targetKey(t: HandoffTarget): string {
  return `${t.host}:${t.port}`;
}

export type DrainState = 'idle' | 'delivering' | 'handing-off' | 'drained';

export interface DrainProgress {
  draining: boolean;
  state: DrainState;
  startedAt: string | null;
  /** Messages still in this node's queue. */
  queued: number;
  /** Messages whose every pending recipient a peer accepted. */
  handedOff: number;
  /** Hand-off attempts that failed (the message stays here and is tried again). */
  handoffFailures: number;
  /** Peers that took messages, with counts. */
  peers: Record<string, number>;
  lastError: string | null;
  /** Listener closed, no session, nothing queued (as GET /queue `drained`). */
  drained: boolean;
  /** Open inbound SMTP sessions. */
  sessions: number;
  /** The inbound SMTP listener is open. */
  listening: boolean;
}
