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

/**
 * Which write goes first for a Secret. Pure. Without reading Secrets the operator cannot know
 * whether one exists; what it knows: it wrote it itself (update), or the cluster has nothing
 * at all yet, so this is its first pass and the Secret was never made (create). Otherwise
 * (a restarted operator, an existing cluster) the Secret almost always exists: update.
 */
export function firstSecretVerb(last: Remembered | undefined, likelyAbsent: boolean): 'create' | 'update' {
  return !last && likelyAbsent ? 'create' : 'update';
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

  /**
   * Writes `secret` whole unless this process wrote the same content lately. True when written.
   * `likelyAbsent`: what the caller observed says the Secret was never made (a cluster with no
   * children yet), so the create goes first (409 → update) instead of an update answered 404.
   */
  async write(secret: KObject, likelyAbsent = false): Promise<boolean> {
    const key = this.key(secret);
    const hash = shortHash(secret);
    const last = this.written.get(key);
    if (!needsWrite(last, hash, this.now(), this.resyncMs)) return false;
    const namespace = secret.metadata.namespace!;
    const body = secret as unknown as V1Secret;
    const update = async (): Promise<void> => {
      this.count('update');
      await this.core.replaceNamespacedSecret({ name: secret.metadata.name, namespace, body, fieldManager: this.fieldManager });
    };
    const create = async (): Promise<void> => {
      this.count('create');
      await this.core.createNamespacedSecret({ namespace, body, fieldManager: this.fieldManager });
    };
    const [first, second] = firstSecretVerb(last, likelyAbsent) === 'create' ? [create, update] : [update, create];
    try {
      await first();
    } catch (err) {
      // update first: 404 means it is gone, create it; create first: 409 means it exists, update it.
      if (codeOf(err) !== (first === update ? 404 : 409)) { this.written.delete(key); throw err; }
      try {
        await second();
      } catch (err2) {
        // created by someone in between (update → 404 → create → 409): write ours over it
        if (first === update && codeOf(err2) === 409) await update();
        else { this.written.delete(key); throw err2; }
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
