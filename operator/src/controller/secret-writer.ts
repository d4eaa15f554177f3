// Writes the operator's own Secrets without reading any Secret (issue 10: no get/list/watch on
// Secrets). A PATCH (server-side apply included) answers with the whole stored object, so a
// patch right on Secrets is a read right in disguise: Secrets are written with create (POST)
// and update (PUT of the whole object, which answers with exactly what was sent).
// What was last written is remembered in memory by content hash: an unchanged Secret is not
// written again (no write storms); after a start, or once per resync period, each is written
// once more, which also restores one deleted by hand.
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { shortHash } from '../resources/hash.ts';
import type { KObject } from './observed.ts';

/** How long a written Secret is trusted to still be as written. */
export const SECRET_RESYNC_MS = 10 * 60_000;

const codeOf = (err: unknown): number | undefined => (err as { code?: number }).code ?? (err as { statusCode?: number }).statusCode;

export interface Remembered { hash: string; at: number }

/** Whether a desired Secret must be written, given what this process last wrote. Pure. */
export function needsWrite(last: Remembered | undefined, hash: string, now: number, resyncMs = SECRET_RESYNC_MS): boolean {
  return !last || last.hash !== hash || now - last.at >= resyncMs;
}

export class SecretWriter {
  private readonly written = new Map<string, Remembered>();
  private readonly core: CoreV1Api;
  private readonly fieldManager: string;
  private readonly count: (verb: string) => void;
  private readonly resyncMs: number;
  private readonly now: () => number;

  constructor(core: CoreV1Api, fieldManager: string, count: (verb: string) => void, resyncMs = SECRET_RESYNC_MS, now = Date.now) {
    this.core = core;
    this.fieldManager = fieldManager;
    this.count = count;
    this.resyncMs = resyncMs;
    this.now = now;
  }

  private key(o: KObject): string { return `${o.metadata.namespace}/${o.metadata.name}`; }

  /** Writes `secret` whole unless this process wrote the same content lately. True when written. */
  async write(secret: KObject): Promise<boolean> {
    const key = this.key(secret);
    const hash = shortHash(secret);
    if (!needsWrite(this.written.get(key), hash, this.now(), this.resyncMs)) return false;
    const namespace = secret.metadata.namespace!;
    const body = secret as unknown as V1Secret;
    try {
      this.count('update');
      await this.core.replaceNamespacedSecret({ name: secret.metadata.name, namespace, body, fieldManager: this.fieldManager });
    } catch (err) {
      if (codeOf(err) !== 404) { this.written.delete(key); throw err; }
      try {
        this.count('create');
        await this.core.createNamespacedSecret({ namespace, body, fieldManager: this.fieldManager });
      } catch (err2) {
        if (codeOf(err2) !== 409) { this.written.delete(key); throw err2; }
        this.count('update'); // created by someone in between: write ours over it
        await this.core.replaceNamespacedSecret({ name: secret.metadata.name, namespace, body, fieldManager: this.fieldManager });
      }
    }
    this.written.set(key, { hash, at: this.now() });
    return true;
  }

  /** Creates a Secret made by `make` unless it exists (409) or this process made sure lately. */
  async createOnce(namespace: string, name: string, make: () => Promise<KObject>): Promise<'created' | 'exists' | 'known'> {
    const key = `${namespace}/${name}`;
    if (!needsWrite(this.written.get(key), 'once', this.now(), this.resyncMs)) return 'known';
    let result: 'created' | 'exists' = 'created';
    try {
      const body = await make();
      this.count('create');
      await this.core.createNamespacedSecret({ namespace, body: body as unknown as V1Secret, fieldManager: this.fieldManager });
    } catch (err) {
      if (codeOf(err) !== 409) throw err;
      result = 'exists';
    }
    this.written.set(key, { hash: 'once', at: this.now() });
    return result;
  }

  /** Runs `apply` for `obj` unless this process applied the same content lately (kinds without a watch). */
  async applyIfChanged(obj: KObject, apply: () => Promise<void>): Promise<boolean> {
    const key = `${obj.apiVersion}/${obj.kind}/${this.key(obj)}`;
    const hash = shortHash(obj);
    if (!needsWrite(this.written.get(key), hash, this.now(), this.resyncMs)) return false;
    try {
      await apply();
    } catch (err) {
      this.written.delete(key);
      throw err;
    }
    this.written.set(key, { hash, at: this.now() });
    return true;
  }

  /** Forgets a deleted cluster's Secrets (they go with it, by garbage collection). */
  forget(namespace: string, names: string[]): void {
    for (const n of names) this.written.delete(`${namespace}/${n}`);
  }
}
