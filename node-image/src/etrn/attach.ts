// Wires ETRN into a mail node: the SMTP command (with the cluster fan-out) on the node's
// smtp-server, and the MAILQv2 listener on BindMailq (moved on reload). Test-friendly
// timers come from the environment (MAILCLUSTER_ETRN_*, MAILCLUSTER_MAILQ_*).
import { networkInterfaces } from 'node:os';
import type { NodeConfig } from '../config/types.ts';
import type { MailNode } from '../node.ts';
import { MailqServer } from '../mailq/server.ts';
import type { EtrnTarget } from './parse.ts';
import type { FlushResult } from './reply.ts';
import { EtrnService } from './service.ts';
import type { EtrnSettings } from './service.ts';
import { enableEtrn } from './smtp-server-etrn.ts';

export interface EtrnAttachment {
  service: EtrnService;
  /** The MAILQv2 listener's address (port 0 in the config gives a free port). */
  mailqAddress(): { address: string; port: number } | undefined;
  close(): Promise<void>;
}

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  return v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', '*', '']);

/** This node's own addresses: its bind and outbound addresses and its interfaces' addresses. */
export function ownAddresses(config: NodeConfig): string[] {
  const list = [config.bindMailq.address, config.bindSmtp.address, config.outboundAddress ?? '', process.env.MAILCLUSTER_BIND_ADDRESS ?? ''];
  for (const infos of Object.values(networkInterfaces())) for (const i of infos ?? []) list.push(i.address);
  return [...new Set(list.filter((a) => !WILDCARDS.has(a)))];
}

export function etrnSettings(config: NodeConfig, mailqPort: number): EtrnSettings {
  return {
    hostname: config.hostname,
    relayDomains: config.relayDomains,
    peers: config.etrnCluster,
    self: { addresses: ownAddresses(config), names: [config.hostname], mailqPort },
    localAddress: config.outboundAddress,
    domainLimits: {
      limit: config.security.etrnDomainRateLimit,
      seconds: config.security.etrnDomainRateTime,
      relayedWindowSeconds: config.security.etrnRelayedWindow,
    },
  };
}

/**
 * Starts the node's flush for a target; reports what it started and what was already in
 * delivery. Messages in delivery when the ETRN came are flushed once more after their
 * attempts end: an attempt that began before the customer came back fails, and the ETRN
 * must not leave that mail waiting for its next retry.
 */
export function flushNodeQueue(node: MailNode, target: EtrnTarget): FlushResult {
  // a draining node's queue is paused: its mail goes to the peers, a flush would start nothing
  if (node.queue.isPaused) return { started: 0 };
  const selector = { domain: target.domain, subdomains: target.subdomains };
  const started = node.queue.flush(selector);
  const suffix = '.' + target.domain;
  const inFlight = node.queue.list().filter((m) =>
    m.inFlight && m.recipients.some((r) => {
      const d = r.slice(r.lastIndexOf('@') + 1).toLowerCase();
      return d === target.domain || (target.subdomains && d.endsWith(suffix));
    })).map((m) => m.id);
  if (inFlight.length > 0) void flushAgainAfter(node, selector, inFlight);
  return { started, inFlight: inFlight.length };
}

async function flushAgainAfter(node: MailNode, selector: { domain: string; subdomains: boolean }, ids: string[], boundMs = 120_000): Promise<void> {
  const until = Date.now() + boundMs;
  const waiting = new Set(ids);
  let stillQueued = false;
  while (waiting.size > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 200).unref());
    for (const id of waiting) {
      const m = node.queue.get(id);
      if (m && m.inFlight) continue;
      waiting.delete(id);
      if (m) stillQueued = true;
    }
  }
  if (stillQueued && !node.queue.isPaused) node.queue.flush(selector);
}

export async function attachEtrn(node: MailNode): Promise<EtrnAttachment> {
  const log = node.log.child({ component: 'etrn' });
  let mailq: MailqServer | undefined;
  let bound: { address: string; port: number } | undefined;
  const mailqPort = () => mailq?.address()?.port ?? node.config.bindMailq.port;

  const burst = envNumber('MAILCLUSTER_ETRN_RATE_BURST');
  const refill = envNumber('MAILCLUSTER_ETRN_RATE_REFILL_SECONDS');
  const service = new EtrnService({
    settings: () => etrnSettings(node.config, mailqPort()),
    flush: (target) => flushNodeQueue(node, target),
    logger: log,
    registry: node.metrics.registry,
    peerTimeoutMs: envNumber('MAILCLUSTER_ETRN_PEER_TIMEOUT_MS'),
    rateLimit: burst !== undefined || refill !== undefined ? { burst: burst ?? 10, refillSeconds: refill ?? 6 } : undefined,
  });

  enableEtrn(node.smtp.server, (args, context) =>
    service.smtpEtrn(args, { clientIp: context.remoteAddress, inTransaction: context.inTransaction }));

  const listen = async (bind: { address: string; port: number }) => {
    if (bound && bound.address === bind.address && bound.port === bind.port) return;
    const next = new MailqServer({
      host: bind.address,
      port: bind.port,
      users: () => node.config.schedulerAuth,
      onEtrn: (request) => service.mailqEtrn(request),
      logger: node.log.child({ component: 'mailq' }),
      idleTimeoutMs: envNumber('MAILCLUSTER_MAILQ_IDLE_TIMEOUT_MS'),
    });
    const address = await next.listen();
    const old = mailq;
    mailq = next;
    bound = bind;
    await old?.close();
    log.info({ event: 'listen', service: 'mailq', address: address.address, port: address.port }, 'MAILQv2 listening');
  };
  await listen(node.config.bindMailq);
  node.onReload(async (config) => {
    try {
      await listen(config.bindMailq);
    } catch (err) {
      log.error({ event: 'reload', err: (err as Error).message }, 'cannot bind the changed MAILQv2 address, keeping the old listener');
    }
  });
  node.addReadyCheck(() => mailq?.address() !== undefined);

  return {
    service,
    mailqAddress: () => mailq?.address(),
    close: async () => { await mailq?.close(); },
  };
}
