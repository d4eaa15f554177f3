// Which copy of the node's ConfigMap to run from: the mounted files (the kubelet refreshes them
// on its sync period, about a minute) or the content the API server's watch delivered (at once).
// Pure: the node feeds it what each side shows and applies the answer.
//
// Neither side says how old it is: the files carry no resourceVersion. What is known:
// - the API server is the source; the kubelet only copies, later, what the API server had;
// - so a file content that the watch has already shown, or that was on disk while the watch
//   already gave something else, is older than (or equal to) the watch's content;
// - while the watch is live, it is at least as new as any file (a file a few milliseconds
//   ahead of the watch is overtaken by the watch event that follows);
// - while the watch is away (no token, 403, API server down), a file content never seen from
//   either side is newer: the operator wrote it after the watch went away, and the file is all
//   there is (the fallback).
// The one case this cannot tell: a content the watch skipped (written and replaced while it was
// away, relisted past it) that the kubelet writes late while the watch is away again. The next
// live watch event or relist corrects it.
import { createHash } from 'node:crypto';

export type ConfigSource = 'api' | 'file';

/** One copy's content hash; null for a file copy that is missing or unreadable. */
export function contentHash(smtpserverConf: string | null, zmailerConf: string | null): string | null {
  if (smtpserverConf === null || zmailerConf === null) return null;
  return createHash('sha256').update(smtpserverConf).update('\0').update(zmailerConf).digest('hex');
}

/** Remembered hashes are bounded (a content seen this long ago is not coming back from a kubelet). */
const REMEMBERED = 256;

export class ConfigSourceChooser {
  /** Hash of the newest content from the watch, if any. */
  private api: string | null = null;
  private live = false;
  /** Contents known to be no newer than the watch's: everything the watch showed, and every
   * file content seen while the watch's content was in force. Oldest first. */
  private readonly superseded: string[] = [];
  /** What was chosen last, and the file content it was chosen against. */
  private lastFile: string | null = null;

  private remember(hash: string | null): void {
    if (hash === null || this.superseded.includes(hash)) return;
    this.superseded.push(hash);
    if (this.superseded.length > REMEMBERED) this.superseded.shift();
  }

  /** The watch delivered content (list or event). */
  apiContent(hash: string): void {
    this.remember(hash);
    this.api = hash;
  }

  /** The watch is connected and synced (true), or away (false). */
  apiLive(live: boolean): void {
    this.live = live;
  }

  get isApiLive(): boolean { return this.live; }

  /** Decides on the file content now on disk; call on every reload. */
  choose(fileHash: string | null): ConfigSource {
    this.lastFile = fileHash;
    let source: ConfigSource;
    if (this.api === null) source = 'file';
    else if (fileHash === null) source = 'api';
    else if (fileHash === this.api) source = 'api';
    else if (this.live) source = 'api';
    else if (this.superseded.includes(fileHash)) source = 'api';
    else {
      // The watch is away and the file moved on to a content never seen: it is newer. From now
      // on the watch's last content is older than the file's.
      this.api = null;
      source = 'file';
    }
    if (source === 'api') this.remember(fileHash);
    return source;
  }

  /** For logs: the file content last decided on. */
  get lastFileHash(): string | null { return this.lastFile; }
}
