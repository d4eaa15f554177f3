// scheduler.auth users (ZMailer's MAILQv2 user file, parsed by the config loader) and the
// matching of their IP ACLs. Pure functions.
//
//   user:password:ATTRS:IP-ACLs      e.g.  etrn:s3cret:ETRN:[127.0.0.0]/8
//
// ATTRS are space-separated rights (NONE SNMP QQ TT ETRN KILL ALL). The ACL is a list of
// networks (`[a.b.c.d]/bits`, `[IPv6:x::y]/bits` or the plain CIDR form the loader
// normalises them to), each optionally preceded by `!`; the first item that matches the
// client decides (allowed, or refused when negated); a client no item matches is refused;
// an empty ACL allows everyone.
import { isIP } from 'node:net';

/** One scheduler.auth line (the same shape as NodeConfig.schedulerAuth's entries). */
export interface SchedulerAuthUser {
  user: string;
  password: string;
  rights: readonly string[];
  acls: readonly string[];
}

export function hasRight(user: SchedulerAuthUser, right: string): boolean {
  return user.rights.includes(right) || user.rights.includes('ALL');
}

interface AclItem {
  negated: boolean;
  address: string;
  bits: number;
}

/** Reads one ACL item; throws on a malformed one. */
export function parseAclItem(text: string): AclItem {
  const m = /^(!?)(?:\[(?:ipv6[:.])?([^\]]*)\]|([^/\[\]]+))(?:\/(\d{1,3}))?$/i.exec(text.trim());
  const address = m ? (m[2] ?? m[3]) : '';
  const family = isIP(address);
  if (!m || family === 0) throw new Error(`bad IP ACL item ${JSON.stringify(text)} (expected [a.b.c.d]/bits)`);
  const width = family === 4 ? 32 : 128;
  const bits = m[4] === undefined ? width : Number(m[4]);
  if (bits > width) throw new Error(`bad prefix length in IP ACL item ${JSON.stringify(text)}`);
  return { negated: m[1] === '!', address, bits };
}

/** True when the ACL lets `clientIp` in (see the rules at the top of this file). */
export function aclAllows(acls: readonly string[], clientIp: string): boolean {
  const items = acls.flatMap((a) => a.split(/[\s,]+/)).filter((a) => a !== '');
  if (items.length === 0) return true;
  const client = addressBytes(clientIp);
  if (!client) return false;
  for (const text of items) {
    let item: AclItem;
    try {
      item = parseAclItem(text);
    } catch {
      continue; // the config loader refuses malformed ACLs; one that slips through matches nothing
    }
    const net = addressBytes(item.address);
    if (net && net.length === client.length && prefixEqual(net, client, item.bits)) return !item.negated;
  }
  return false;
}

/**
 * The user entry `name` may use from `clientIp`: the first line with that name whose ACL
 * lets the client in (ZMailer reads the file the same way).
 */
export function findUser(users: readonly SchedulerAuthUser[], name: string, clientIp: string): SchedulerAuthUser | undefined {
  return users.find((u) => u.user === name && aclAllows(u.acls, clientIp));
}

function prefixEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

/** 4 bytes for IPv4 (also for an IPv4-mapped IPv6 address), 16 for IPv6, undefined otherwise. */
export function addressBytes(address: string): Uint8Array | undefined {
  let a = address.trim();
  if (a.toLowerCase().startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  const family = isIP(a);
  if (family === 4) return Uint8Array.from(a.split('.').map(Number));
  if (family !== 6) return undefined;
  let text = a;
  // an embedded IPv4 tail (::1.2.3.4) becomes two hex groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [p, q, r, s] = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + ((p << 8) | q).toString(16) + ':' + ((r << 8) | s).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = [...headGroups, ...fill, ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  });
  return bytes;
}
