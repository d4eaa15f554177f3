// The main thread's side of the delivery thread (worker.ts): same interface as
// TransportPool. A dead thread fails its pending sends as temporary errors (they are
// retried) and is replaced on the next send.
import { Worker } from 'node:worker_threads';
import type { SendResult, Sender, TransportSettings } from './transports.ts';
import type { SerializedSendError, WorkerRequest } from './worker.ts';
import type { MessageContent } from './message-content.ts';

interface Pending { resolve: (r: SendResult) => void; reject: (e: Error) => void }

export class ThreadedTransports implements Sender {
  private worker: Worker | null = null;
  private settings: TransportSettings;
  private pending = new Map<number, Pending>();
  private seq = 0;
  private closed = false;
  private readonly onError: (err: Error) => void;

  constructor(settings: TransportSettings, onError: (err: Error) => void = () => {}) {
    this.settings = settings;
    this.onError = onError;
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./worker.ts', import.meta.url), { workerData: { settings: this.settings } });
    w.on('message', (m: { seq: number; result?: SendResult; error?: SerializedSendError }) => {
      const p = this.pending.get(m.seq);
      if (!p) return;
      this.pending.delete(m.seq);
      if (m.error) p.reject(Object.assign(new Error(m.error.message), m.error));
      else p.resolve(m.result!);
    });
    const fail = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      if (!this.closed) this.onError(err);
      for (const p of this.pending.values()) p.reject(Object.assign(new Error(`delivery thread stopped: ${err.message}`), { code: 'EWORKER' }));
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    w.unref();
    return w;
  }

  private post(m: WorkerRequest): void {
    if (this.closed) throw new Error('transports are closed');
    this.worker ??= this.spawn();
    this.worker.postMessage(m);
  }

  configure(settings: TransportSettings): void {
    this.settings = settings;
    if (this.worker) this.worker.postMessage({ type: 'configure', settings } satisfies WorkerRequest);
  }

  send(address: string, port: number, servername: string, from: string, to: string[], content: MessageContent, messageId?: string, domain?: string): Promise<SendResult> {
    const seq = ++this.seq;
    return new Promise<SendResult>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      try {
        this.post({ type: 'send', seq, address, port, servername, from, to, content, messageId, domain });
      } catch (err) {
        this.pending.delete(seq);
        reject(err as Error);
      }
    });
  }

  close(): void {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w) { w.postMessage({ type: 'close' } satisfies WorkerRequest); void w.terminate(); }
    for (const p of this.pending.values()) p.reject(Object.assign(new Error('delivery thread closed'), { code: 'EWORKER' }));
    this.pending.clear();
  }
}
