// Which local command runs which container image: one small explicit table (DECISIONS.md).
// Images are matched by repository name, the tag (and any digest) is ignored. The table's
// entrypoint plays the image's ENTRYPOINT; the container's `args` are appended (its CMD).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const node = process.execPath; // the agent runs on Node 24, and so do the images
const cli = join(repoRoot, 'bin', 'mailcluster.js');

export interface ImageEntry {
  /** What the image runs when the container sets no `command`. */
  entrypoint: string[];
  /** True when a container `command` replaces the entrypoint (a general-purpose image). */
  commandReplacesEntrypoint: boolean;
}

export const imageTable: Readonly<Record<string, ImageEntry>> = {
  'mailcluster/node': { entrypoint: [node, cli, 'node'], commandReplacesEntrypoint: false },
  'mailcluster/operator': { entrypoint: [node, cli, 'operator'], commandReplacesEntrypoint: false },
  // Test image: tiny HTTP (and optional TCP) echo, see local/src/images/echo.ts.
  'mailcluster/echo': { entrypoint: [node, join(repoRoot, 'local', 'src', 'images', 'echo.ts')], commandReplacesEntrypoint: false },
  // Runs the container's `command` + `args` as a host command (sh, sleep, ...), for tests and tools.
  'mailcluster/host': { entrypoint: [], commandReplacesEntrypoint: true },
};

/** The repository part of an image reference: drops registry-less tag and digest. */
export function imageRepository(image: string): string {
  const withoutDigest = image.split('@')[0];
  const lastSlash = withoutDigest.lastIndexOf('/');
  const lastColon = withoutDigest.lastIndexOf(':');
  const repo = lastColon > lastSlash ? withoutDigest.slice(0, lastColon) : withoutDigest;
  return repo.replace(/^docker\.io\//, '');
}

/** The argv a container runs, or an error message when the image is unknown. */
export function containerArgv(image: string, command: string[] | undefined, args: string[] | undefined): string[] {
  const entry = imageTable[imageRepository(image)];
  if (!entry) {
    throw new Error(`image ${JSON.stringify(image)} has no local command (known: ${Object.keys(imageTable).join(', ')})`);
  }
  const head = entry.commandReplacesEntrypoint && command?.length ? command : entry.entrypoint;
  const argv = [...head, ...(args ?? [])];
  if (argv.length === 0) throw new Error(`image ${image} needs a container command`);
  return argv;
}
