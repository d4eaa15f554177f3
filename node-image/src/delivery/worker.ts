// Delivery thread: runs the pooled nodemailer transports off the main thread, so that
// outbound SMTP (its parsing and socket I/O) uses the second core while the main thread
// takes inbound SMTP and the spool. Messages: configure | send | close. A large message
// comes as its blob file's path, which this thread reads itself (message-content.ts):
// the content is never copied between the threads.
import { parentPort, workerData } from 'node:worker_threads';
import { TransportPool } from './transports.ts';
import type { TransportSettings } from './transports.ts';
import type { MessageContent } from './message-content.ts';

export type WorkerRequest =
  | { type: 'configure'; settings: TransportSettings }
  | { type: 'send'; seq: number; address: string; port: number; servername: string; from: string; to: string[]; content: MessageContent; messageId?: string; domain?: string }
  | { type: 'close' };

export interface SerializedSendError {
  code?: string;
  /** What nodemailer replaced by its own code (EBLOB under ESTREAM: a blob failed its check). */
  originalCode?: string;
  responseCode?: number;
  response?: string;
  message: string;
  rejectedErrors?: Array<{ recipient: string; responseCode?: number; response?: string }>;
}

if (parentPort) {
  const port = parentPort;
  const pool = new TransportPool((workerData as { settings: TransportSettings }).settings);
  port.on('message', (m: WorkerRequest) => {
    if (m.type === 'configure') {
      pool.configure(m.settings);
    } else if (m.type === 'close') {
      pool.close();
      port.close();
    } else {
      pool.send(m.address, m.port, m.servername, m.from, m.to, m.content, m.messageId, m.domain).then(
        (result) => port.postMessage({ seq: m.seq, result }),
        (err: Error & SerializedSendError) => port.postMessage({
          seq: m.seq,
          error: {
            code: err.code, originalCode: err.originalCode, responseCode: err.responseCode, response: err.response, message: err.message,
            rejectedErrors: err.rejectedErrors?.map((r) => ({ recipient: String(r.recipient), responseCode: r.responseCode, response: r.response })),
          } satisfies SerializedSendError,
        }),
      );
    }
  });
}
