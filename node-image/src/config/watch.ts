// Watches the config directory (and the directories of files it points to, such as the
// TLS secret's) and calls `onChange` once per burst of changes. Watching directories rather
// than files catches the kubelet's atomic `..data` symlink swap, which replaces files
// without writing to them.
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import path from 'node:path';

export class DirectoryWatcher {
  private watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | null = null;
  private readonly debounceMs: number;
  private readonly onChange: () => void;
  private readonly onError: (dir: string, err: Error) => void;

  constructor(onChange: () => void, onError: (dir: string, err: Error) => void, debounceMs = 200) {
    this.onChange = onChange;
    this.onError = onError;
    this.debounceMs = debounceMs;
  }

  /** Watches exactly these directories plus the parents of these files (idempotent). */
  setTargets(dirs: string[], files: string[]): void {
    const wanted = new Set([...dirs, ...files.map((f) => path.dirname(f))].map((d) => path.resolve(d)));
    for (const [dir, w] of this.watchers) {
      if (!wanted.has(dir)) { w.close(); this.watchers.delete(dir); }
    }
    for (const dir of wanted) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.trigger());
        w.on('error', (err) => { this.watchers.delete(dir); this.onError(dir, err); });
        this.watchers.set(dir, w);
      } catch (err) {
        this.onError(dir, err as Error);
      }
    }
  }

  private trigger(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; this.onChange(); }, this.debounceMs);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
