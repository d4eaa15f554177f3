// Queue operations on the admin port (issue 14), every one behind the admin credential
// (contract 1): they show message data or change state.
//   GET  /queue/messages?domain=&sender=&held=&minAgeSeconds=&limit=   list (postqueue -p)
//   GET  /queue/message?id=ID                                          envelope + headers
//   GET  /queue/summary                                                per-domain counts
//   POST /queue/hold | /queue/release | /queue/retry | /queue/delete    {"ids":[...]} or {"all":true, filter...}; delete takes "dsn": true
// Hold is durable (a spool update record) and keeps a message out of retries, ETRN and the
// drain hand-off until released. A draining node refuses new holds (409): its mail is on its
// way to the peers, hold it there; messages held before the drain keep the node from
// reporting drained until they are released (then handed off) or deleted.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Gauge } from 'prom-client';
import { QueueOperationError } from '../delivery/queue.ts';
import type { QueuedMessageInfo } from '../delivery/queue.ts';
import { headerSection } from '../delivery/dsn.ts';
import type { MailNode } from '../node.ts';
import { sendJson } from './server.ts';
import type { AdminHandler } from './server.ts';
import {
  BadRequest, batchStatus, filterMessages, messageView, parseListQuery, parseOperationBody, selectIds, summarizeQueue,
} from './queue-view.ts';
import type { MessageDetail, OperationResult } from './queue-view.ts';

type Operation = 'hold' | 'release' | 'retry' | 'delete';

function query(req: IncomingMessage): URLSearchParams {
  return new URL(req.url ?? '/', 'http://admin').searchParams;
}

function fail(res: ServerResponse, err: unknown): void {
  if (err instanceof BadRequest) return sendJson(res, 400, { error: err.message });
  if (err instanceof QueueOperationError) return sendJson(res, err.code === 'not-found' ? 404 : 409, { error: err.message, code: err.code });
  throw err;
}

/**
 * Registers a route that needs the admin credential (contract 1): the node passes
 * `(m, p, h) => node.admin.protectedRoute(m, p, h)` (AdminServer checks the Bearer token
 * before the body is read; 401/403 as contract 1).
 */
export type ProtectedRoute = (method: string, path: string, handler: AdminHandler) => void;

/** Registers the queue routes (every one protected) and the queue gauges. */
export function attachQueueApi(node: MailNode, protectedRoute: ProtectedRoute): void {
  const { queue } = node;

  protectedRoute('GET', '/queue/messages', (req, res) => {
    try {
      const now = Date.now();
      const request = parseListQuery(query(req));
      const messages = filterMessages(queue.list(), request, now).map((m) => messageView(m, now));
      sendJson(res, 200, { node: node.config.hostname, count: messages.length, messages });
    } catch (err) { fail(res, err); }
  });

  protectedRoute('GET', '/queue/message', async (req, res) => {
    try {
      const id = query(req).get('id') ?? '';
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new BadRequest('give ?id=<queue id>');
      const info = queue.get(id);
      const stored = node.spool.messages.get(id);
      if (!info || !stored) throw new QueueOperationError('not-found', `message ${id} is not in the queue`);
      const content = await queue.readContent(id).catch(() => null);
      const detail: MessageDetail = {
        ...messageView(info, Date.now()),
        envelope: {
          from: stored.meta.from,
          recipients: stored.meta.rcpts.map((r) => ({ ...r })),
          clientAddress: stored.meta.clientAddress ?? null,
          bounce: stored.meta.bounce === true,
        },
        headers: content ? headerSection(content) : '',
      };
      sendJson(res, 200, { node: node.config.hostname, message: detail });
    } catch (err) { fail(res, err); }
  });

  protectedRoute('GET', '/queue/summary', (_req, res) => {
    sendJson(res, 200, { node: node.config.hostname, draining: node.isDraining, ...summarizeQueue(queue.list(), Date.now()) });
  });

  const operation = (op: Operation): AdminHandler => async (_req, res, body) => {
    try {
      const { selection, dsn } = parseOperationBody(body, op === 'delete');
      if (op === 'hold' && node.isDraining) {
        throw new QueueOperationError('draining', 'this node is draining: its mail is being handed off to the peers; hold it there');
      }
      const now = Date.now();
      const ids = selectIds(queue.list(), selection, now);
      // concurrently, so that the spool's group commit makes many holds durable with one fsync
      const one = async (id: string): Promise<OperationResult> => {
        try {
          let info: QueuedMessageInfo;
          if (op === 'hold' || op === 'release') info = await queue.setHeld(id, op === 'hold');
          else if (op === 'retry') info = queue.retryNow(id);
          else info = await queue.delete(id, { dsn });
          return { id, ok: true, message: messageView(info, Date.now()) };
        } catch (err) {
          if (err instanceof QueueOperationError) return { id, ok: false, code: err.code, error: err.message };
          return { id, ok: false, code: 'error', error: (err as Error).message };
        }
      };
      const results: OperationResult[] = [];
      for (let i = 0; i < ids.length; i += 256) results.push(...await Promise.all(ids.slice(i, i + 256).map(one)));
      node.log.info({ event: 'queue-admin', operation: op, selected: ids.length, ok: results.filter((r) => r.ok).length, dsn: op === 'delete' ? dsn : undefined }, `queue ${op}`);
      sendJson(res, batchStatus(results), { node: node.config.hostname, operation: op, count: results.filter((r) => r.ok).length, results });
    } catch (err) { fail(res, err); }
  };
  protectedRoute('POST', '/queue/hold', operation('hold'));
  protectedRoute('POST', '/queue/release', operation('release'));
  protectedRoute('POST', '/queue/retry', operation('retry'));
  protectedRoute('POST', '/queue/delete', operation('delete'));

  registerQueueGauges(node);
}

/** Gauges read at scrape time: oldest message age, held messages, draining. */
function registerQueueGauges(node: MailNode): void {
  const registers = [node.metrics.registry];
  const { queue, spool } = node;
  new Gauge({
    name: 'mailcluster_queue_oldest_message_age_seconds',
    help: 'Age of the oldest message in the queue (0 when the queue is empty).',
    registers,
    collect() {
      let oldest = Infinity;
      for (const { meta } of spool.messages.values()) if (meta.receivedAt < oldest) oldest = meta.receivedAt;
      this.set(oldest === Infinity ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
    },
  });
  new Gauge({
    name: 'mailcluster_queue_held_messages',
    help: 'Messages on hold (admin API): never attempted until released.',
    registers,
    collect() { this.set(queue.summary().held); },
  });
  new Gauge({
    name: 'mailcluster_node_draining',
    help: '1 while this node drains (stopped accepting, handing its mail to peers).',
    registers,
    collect() { this.set(node.isDraining ? 1 : 0); },
  });
}
