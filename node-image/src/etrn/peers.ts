// etrn-cluster peers: how they are named, and whether a listed peer is this node.
// Pure functions; the caller gathers this node's own addresses.
import { isIP } from 'node:net';

/** One `PARAM etrn-cluster <node[/port]> <user> <password>` line, as the config loader gives it
 * (the same shape as NodeConfig.etrnCluster's entries; an `@file` password already read). */
export interface EtrnClusterPeer {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** How a peer is named in replies and logs: `host/port`, as in the config line. */
export function peerName(peer: { host: string; port: number }): string {
  return `${peer.host}/${peer.port}`;
}

/**
 * One comparable form for an address or a name: lower case, without `[...]`, `IPv6:` and
 * the IPv4-mapped `::ffff:` prefix, without a trailing dot.
 */
export function normalizeAddress(value: string): string {
  let v = value.trim().toLowerCase();
  if (v.startsWith('[') && v.endsWith(']')) v = v.slice(1, -1);
  if (v.startsWith('ipv6:')) v = v.slice(5);
  if (v.startsWith('::ffff:') && isIP(v.slice(7)) === 4) v = v.slice(7);
  return v.replace(/\.$/, '');
}

/** What this node knows about itself. */
export interface SelfIdentity {
  /** Addresses that are this node's own: its bind address(es) and its interface addresses. */
  addresses: readonly string[];
  /** Names of this node (its `PARAM hostname`). */
  names: readonly string[];
  /** The port our MAILQv2 listener uses. */
  mailqPort: number;
}

/**
 * A peer is this node when its host is one of our own addresses or names and its port is
 * our MAILQv2 port; such a peer is flushed locally instead of over the network (the same
 * list is rendered for every node, so each finds itself in it).
 *
 * SELFADDRESSES is deliberately not used here: it names every cluster address (every
 * peer and the load balancer), for MX routing, so it cannot tell this node from the others.
 */
export function isSelfPeer(peer: { host: string; port: number }, self: SelfIdentity): boolean {
  if (peer.port !== self.mailqPort) return false;
  const host = normalizeAddress(peer.host);
  return self.addresses.some((a) => normalizeAddress(a) === host) || self.names.some((n) => normalizeAddress(n) === host);
}
