// Writes a volume's files the way the kubelet's AtomicWriter does, so that programs which
// watch Kubernetes-mounted ConfigMaps see the same layout and the same atomic change:
//   <dir>/..2026_11_29_11_20_00.123456789/<files>   the payload, in a timestamped directory
//   <dir>/..data -> ..2026_...                       swapped atomically (rename) on change
//   <dir>/<key>  -> ..data/<key>                      one symlink per top-level path
import { lstat, mkdir, readFile, readdir, readlink, rename, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface PayloadFile { content: Buffer; mode: number }
export type Payload = Map<string, PayloadFile>;

const dataLink = '..data';

function timestampDirName(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const nanos = p(now.getUTCMilliseconds(), 3) + p(Math.floor(Math.random() * 1e6), 6);
  return `..${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}.${nanos}`;
}

/** Checks that payload paths stay inside the volume (no absolute paths, no `..`). */
export function validatePayloadPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '' || part.startsWith('..'))) {
    throw new Error(`invalid volume file path ${JSON.stringify(path)}`);
  }
}

async function payloadMatches(dir: string, payload: Payload): Promise<boolean> {
  try {
    const current = join(dir, dataLink);
    for (const [path, file] of payload) {
      const st = await lstat(join(current, path));
      if ((st.mode & 0o777) !== file.mode) return false;
      if (!(await readFile(join(current, path))).equals(file.content)) return false;
    }
    return (await listFiles(join(dir, dataLink))).length === payload.size;
  } catch {
    return false;
  }
}

async function listFiles(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...await listFiles(root, rel));
    else out.push(rel);
  }
  return out;
}

/** Makes `dir` hold exactly `payload`; returns false when it already did (nothing written). */
export async function writeAtomically(dir: string, payload: Payload): Promise<boolean> {
  for (const path of payload.keys()) validatePayloadPath(path);
  await mkdir(dir, { recursive: true });
  if (await payloadMatches(dir, payload)) return false;

  let oldTsDir: string | undefined;
  try { oldTsDir = await readlink(join(dir, dataLink)); } catch { /* first write */ }

  const tsName = timestampDirName();
  const tsDir = join(dir, tsName);
  await mkdir(tsDir, { mode: 0o755 });
  for (const [path, file] of payload) {
    const target = join(tsDir, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.content, { mode: file.mode });
    await chmod(target, file.mode); // writeFile's mode is filtered by the umask
  }
  const tmpLink = join(dir, '..data_tmp');
  await rm(tmpLink, { force: true });
  await symlink(tsName, tmpLink);
  await rename(tmpLink, join(dir, dataLink)); // the atomic swap

  // User-visible names: add new top-level symlinks, remove the ones no longer in the payload.
  const topLevel = new Set([...payload.keys()].map((p) => p.split('/')[0]));
  for (const name of topLevel) {
    const link = join(dir, name);
    const want = join(dataLink, name);
    let have: string | undefined;
    try { have = await readlink(link); } catch { /* missing */ }
    if (have !== want) {
      await rm(link, { force: true, recursive: true });
      await symlink(want, link);
    }
  }
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..')) continue;
    if (!topLevel.has(entry)) await rm(join(dir, entry), { force: true, recursive: true });
  }
  if (oldTsDir && oldTsDir !== tsName) await rm(join(dir, oldTsDir), { recursive: true, force: true });
  return true;
}
