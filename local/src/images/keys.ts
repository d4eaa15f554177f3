// What the images are made of, and the content keys that decide whether one must be
// built again (pure: file contents in, names and hashes out).
import { createHash } from 'node:crypto';

export type ImageName = 'node' | 'operator';

/** One image: its Dockerfile and every path (file or directory) its COPY lines read. */
export interface ImageSpec {
  name: ImageName;
  dockerfile: string;
  inputs: string[];
}

// package.json says "type": "module"; the lock decides the staged node_modules.
const common = ['package.json', 'package-lock.json', 'bin'];

export const IMAGE_SPECS: readonly ImageSpec[] = [
  { name: 'node', dockerfile: 'node-image/Dockerfile', inputs: [...common, 'node-image/src'] },
  { name: 'operator', dockerfile: 'operator/Dockerfile', inputs: [...common, 'operator/src'] },
];

/**
 * The image reference, fully qualified as Kubernetes resolves the chart's
 * `mailcluster/node:<version>` (docker.io/...), so an imported archive matches it.
 */
export function imageRef(name: ImageName, version: string): string {
  return `docker.io/mailcluster/${name}:${version}`;
}

/** A file that goes into a key: its path relative to the repository and its bytes. */
export interface KeyedFile { path: string; content: Uint8Array }

/**
 * A hex SHA-256 over labelled parts and files. Files are sorted by path and framed by
 * path and length, so a rename or a moved byte changes the key and order never does.
 */
export function contentKey(parts: Record<string, string>, files: KeyedFile[] = []): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(parts).sort()) hash.update(`part ${name}=${parts[name]}\n`);
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    hash.update(`file ${file.path} ${file.content.length}\n`);
    hash.update(file.content);
  }
  return hash.digest('hex');
}

/** The cache directory of one built image: readable name, version, then the key. */
export function imageCacheDirName(name: ImageName, version: string, key: string): string {
  return `${name}-${version}-${key.slice(0, 16)}`;
}

export const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_VARIANT = 'minbase';

/**
 * The Containerfile of the local base: Debian minbase plus the Node 24 binary that the
 * `node` npm package ships (it has no npm: the images get node_modules staged instead).
 */
export function baseContainerfile(debianRef: string): string {
  return [
    `FROM ${debianRef}`,
    'COPY node /usr/local/bin/node',
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'CMD ["node"]',
    '',
  ].join('\n');
}

/**
 * Paths removed from the debootstrap tree before it becomes the base: package lists and
 * caches, documentation and translations. Nothing at run time reads them; apt would
 * need `apt-get update` first anyway.
 */
export const ROOTFS_TRIM = [
  'var/cache/apt', 'var/lib/apt/lists', 'usr/share/doc', 'usr/share/man', 'usr/share/info',
  'usr/share/locale', 'var/cache/debconf/templates.dat-old', 'var/log',
] as const;
