// `npm run images`: builds the node and operator images from their Dockerfiles with podman
// (no Docker daemon, no registry) and saves each as an OCI archive in the cache, keyed by
// the content of everything the image is made of, so an unchanged tree is never rebuilt.
//
// No registry is reachable, so `node:24-slim` is replaced (ARG BASE) by a local base:
// `debootstrap --variant=minbase bookworm` (cached as a tarball) plus the Node 24 binary
// of the `node` npm package. That binary comes without npm, so the production
// node_modules are installed on the host (`npm ci --omit=dev`) and staged into the build
// context (ARG DEPS=staged).
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireBuildLock } from '../controlplane/build.ts';
import { bareImports, dependencyClosure, type LockPackage } from './deps.ts';
import { baseContainerfile, contentKey, DEBIAN_SUITE, DEBIAN_VARIANT, IMAGE_SPECS, imageCacheDirName, imageRef, ROOTFS_TRIM, type ImageName, type ImageSpec, type KeyedFile } from './keys.ts';
import { imageExists, podman, PODMAN_ULIMITS, podmanStore, type PodmanStore } from './podman.ts';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The files that decide how an image's context is staged: part of every image's key. */
const BUILD_PROCEDURE = ['local/src/images/build.ts', 'local/src/images/deps.ts', 'local/src/images/keys.ts'];

export interface BuiltImage {
  name: ImageName;
  /** e.g. docker.io/mailcluster/node:0.1.0 */
  ref: string;
  /** The OCI archive (`podman load -i`, `ctr images import`). */
  archive: string;
  key: string;
  /** Uncompressed size of the image (all layers), as podman reports it. */
  sizeBytes: number;
  archiveBytes: number;
  /** Seconds the build took when it was built (from its manifest when cached). */
  buildSeconds: number;
  source: 'built' | 'cache';
}

export interface EnsureImagesOptions {
  /** Default `${XDG_CACHE_HOME:-$HOME/.cache}/mailcluster/images`. */
  cacheRoot?: string;
  /** The repository to build from; default this one. */
  root?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  /** Build even when the archive for this content exists. */
  force?: boolean;
}

export function defaultImagesCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || '/root', '.cache');
  return join(base, 'mailcluster', 'images');
}

/** Every file under the given repository paths (files or directories), with its bytes. */
export function readInputs(root: string, paths: readonly string[]): KeyedFile[] {
  const files: KeyedFile[] = [];
  const walk = (abs: string) => {
    const st = statSync(abs);
    if (st.isDirectory()) {
      for (const entry of readdirSync(abs).sort()) walk(join(abs, entry));
    } else if (st.isFile()) {
      files.push({ path: relative(root, abs), content: readFileSync(abs) });
    }
  };
  for (const p of paths) walk(join(root, p));
  return files;
}

/** The Node binary the base gets, and its version (the `node` devDependency). */
function nodeBinary(root: string): { path: string; version: string } {
  const path = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm ci\` first (the \`node\` devDependency brings the Node 24 binary the images use)`);
  const version = JSON.parse(readFileSync(join(root, 'node_modules', 'node', 'package.json'), 'utf8')).version as string;
  return { path, version };
}

interface Plan {
  version: string;
  node: { path: string; version: string };
  debianKey: string;
  baseKey: string;
  baseRef: string;
  debianRef: string;
  images: Array<{ name: ImageName; dockerfile: string; ref: string; key: string; dir: string }>;
}

function plan(root: string, cacheRoot: string, env: NodeJS.ProcessEnv): Plan {
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version as string;
  const node = nodeBinary(root);
  const mirror = debianMirror(env);
  const debianKey = contentKey({ suite: DEBIAN_SUITE, variant: DEBIAN_VARIANT, arch: process.arch, mirror, trim: ROOTFS_TRIM.join(',') }).slice(0, 16);
  const debianRef = `localhost/mailcluster/debian:${DEBIAN_SUITE}-${DEBIAN_VARIANT}-${debianKey}`;
  const baseKey = contentKey({ debianRef, containerfile: baseContainerfile(debianRef) }, [{ path: 'node', content: readFileSync(node.path) }]).slice(0, 16);
  const baseRef = `localhost/mailcluster/base:node${node.version}-${baseKey}`;
  const images = IMAGE_SPECS.map((spec) => {
    // the procedure's own sources too: a change in what gets staged is a change of the image
    const key = contentKey({ baseRef, deps: 'staged-pruned', image: spec.name, version }, readInputs(root, [spec.dockerfile, ...spec.inputs, ...BUILD_PROCEDURE]));
    return { name: spec.name, dockerfile: spec.dockerfile, ref: imageRef(spec.name, version), key, dir: join(cacheRoot, imageCacheDirName(spec.name, version, key)) };
  });
  return { version, node, debianKey, baseKey, baseRef, debianRef, images };
}

function debianMirror(env: NodeJS.ProcessEnv): string {
  return env.MAILCLUSTER_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
}

function cached(dir: string, name: ImageName, ref: string, key: string): BuiltImage | undefined {
  const manifestPath = join(dir, 'manifest.json');
  const archive = join(dir, 'image.oci.tar');
  if (!existsSync(manifestPath) || !existsSync(archive)) return undefined;
  const m = JSON.parse(readFileSync(manifestPath, 'utf8'));
  return { name, ref, archive, key, sizeBytes: m.sizeBytes, archiveBytes: statSync(archive).size, buildSeconds: m.buildSeconds, source: 'cache' };
}

/** The node and operator images as OCI archives: from the cache, or built now. */
export async function ensureImages(opts: EnsureImagesOptions = {}): Promise<BuiltImage[]> {
  const env = opts.env ?? process.env;
  const root = opts.root ?? repoRoot;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[images] ${line}\n`));
  const cacheRoot = opts.cacheRoot ?? defaultImagesCacheRoot(env);
  mkdirSync(cacheRoot, { recursive: true });

  let p = plan(root, cacheRoot, env);
  const fromCache = () => p.images.map((i) => cached(i.dir, i.name, i.ref, i.key));
  let found = fromCache();
  if (!opts.force && found.every(Boolean)) return found as BuiltImage[];

  const lock = await acquireBuildLock(join(cacheRoot, 'build.lock'), log, 'the images');
  try {
    // another process may have built the same content while we waited
    p = plan(root, cacheRoot, env);
    found = fromCache();
    if (!opts.force && found.every(Boolean)) return found as BuiltImage[];
    removeAbandoned(cacheRoot);
    const store = podmanStore(cacheRoot, env);
    mkdirSync(store.root, { recursive: true });
    await ensureBase(store, cacheRoot, p, env, log);
    const modules = await ensureProductionModules(root, cacheRoot, log);
    const result: BuiltImage[] = [];
    for (const [i, image] of p.images.entries()) {
      const hit = found[i];
      if (hit && !opts.force) {
        result.push(hit);
        continue;
      }
      const staging = join(cacheRoot, `context-${image.name}.tmp-${process.pid}`);
      rmSync(staging, { recursive: true, force: true });
      try {
        stageContext(root, modules, staging, IMAGE_SPECS.find((s) => s.name === image.name)!, log);
        result.push(await buildImage(store, staging, p, image, log));
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
    }
    return result;
  } finally {
    lock.release();
  }
}

async function buildImage(store: PodmanStore, context: string, p: Plan, image: Plan['images'][number], log: (l: string) => void): Promise<BuiltImage> {
  const started = Date.now();
  log(`building ${image.ref} from ${image.dockerfile} (content ${image.key.slice(0, 16)})`);
  await podman(store, [
    'build', ...PODMAN_ULIMITS, '--network', 'none', '--pull=never',
    '--build-arg', `BASE=${p.baseRef}`, '--build-arg', 'DEPS=staged',
    '--label', `io.mailcluster.content-key=${image.key}`,
    '-f', join(context, image.dockerfile), '-t', image.ref, context,
  ]);
  const sizeBytes = Number((await podman(store, ['image', 'inspect', '--format', '{{.Size}}', image.ref])).trim());
  const tmp = `${image.dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await podman(store, ['save', '--format', 'oci-archive', '-o', join(tmp, 'image.oci.tar'), image.ref]);
  const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify({
    image: image.ref, key: image.key, base: p.baseRef, node: p.node.version, sizeBytes, buildSeconds, builtAt: new Date().toISOString(),
  }, null, 2) + '\n');
  rmSync(image.dir, { recursive: true, force: true });
  renameSync(tmp, image.dir);
  removeSuperseded(image.dir, image.name);
  // the replaced image's layers (now untagged) leave podman's store too
  await podman(store, ['image', 'prune', '-f']);
  const archive = join(image.dir, 'image.oci.tar');
  log(`built ${image.ref} in ${buildSeconds} s: ${archive}`);
  return { name: image.name, ref: image.ref, archive, key: image.key, sizeBytes, archiveBytes: statSync(archive).size, buildSeconds, source: 'built' };
}

/** Staging left by a build that was killed; holding the lock, none is in use. */
function removeAbandoned(cacheRoot: string): void {
  for (const entry of readdirSync(cacheRoot)) {
    if (entry.includes('.tmp-')) rmSync(join(cacheRoot, entry), { recursive: true, force: true });
  }
}

/** One archive per image: an older content's directory goes when a new one is built. */
function removeSuperseded(current: string, name: ImageName): void {
  const parent = dirname(current);
  for (const entry of readdirSync(parent)) {
    if (entry.startsWith(`${name}-`) && !entry.includes('.tmp-') && join(parent, entry) !== current) rmSync(join(parent, entry), { recursive: true, force: true });
  }
}

/**
 * One image's build context: only what its Dockerfile COPYs, plus .staged/node_modules
 * holding just the installed packages its sources import and what those need.
 */
function stageContext(root: string, modules: string, staging: string, spec: ImageSpec, log: (l: string) => void): void {
  mkdirSync(staging, { recursive: true });
  for (const p of [spec.dockerfile, ...spec.inputs]) cpSync(join(root, p), join(staging, p), { recursive: true });
  const sources = readInputs(root, spec.inputs).filter((f) => /\.(ts|js|mjs|cjs)$/.test(f.path));
  const roots = [...new Set(sources.flatMap((f) => bareImports(Buffer.from(f.content).toString('utf8'))))];
  const packages = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')).packages as Record<string, LockPackage>;
  const needed = dependencyClosure(packages, roots);
  const devOnly = needed.filter((p) => packages[p].dev);
  if (devOnly.length > 0) throw new Error(`the ${spec.name} image's sources need dev-only packages (${devOnly.join(', ')}): make them dependencies or stop importing them`);
  const target = join(staging, '.staged');
  for (const path of needed) {
    const from = join(modules, '..', path);
    if (!existsSync(from)) {
      if (packages[path].optional) continue; // an optional package npm did not install here
      throw new Error(`${path} is in the lock but not installed in ${modules}`);
    }
    // the package without its nested node_modules: those are copied only when needed
    const nested = join(from, 'node_modules');
    cpSync(from, join(target, path), { recursive: true, filter: (src) => src !== nested && !src.startsWith(`${nested}/`) });
  }
  log(`${spec.name}: ${needed.length} packages for ${roots.join(', ')}`);
}

/** `npm ci --omit=dev` of this lock file, once (cached by the lock's hash). */
async function ensureProductionModules(root: string, cacheRoot: string, log: (l: string) => void): Promise<string> {
  const lock = readFileSync(join(root, 'package-lock.json'));
  const pkg = readFileSync(join(root, 'package.json'));
  const key = contentKey({}, [{ path: 'package.json', content: pkg }, { path: 'package-lock.json', content: lock }]).slice(0, 16);
  const dir = join(cacheRoot, `node_modules-${key}`);
  if (existsSync(join(dir, 'node_modules', '.package-lock.json'))) return join(dir, 'node_modules');
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  copyFileSync(join(root, 'package.json'), join(tmp, 'package.json'));
  copyFileSync(join(root, 'package-lock.json'), join(tmp, 'package-lock.json'));
  log('npm ci --omit=dev (production node_modules for the images)');
  // --ignore-scripts as in the Dockerfiles: no install script runs, nothing is compiled
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], log, tmp);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return join(dir, 'node_modules');
}

/** The local base image in podman's store, from the cached debootstrap tarball. */
async function ensureBase(store: PodmanStore, cacheRoot: string, p: Plan, env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<void> {
  if (await imageExists(store, p.baseRef)) return;
  if (!(await imageExists(store, p.debianRef))) {
    const tarball = await ensureDebianRootfs(cacheRoot, p.debianKey, env, log);
    log(`podman import ${tarball} as ${p.debianRef}`);
    await podman(store, ['import', tarball, p.debianRef]);
  }
  const ctx = join(cacheRoot, `base.tmp-${process.pid}`);
  rmSync(ctx, { recursive: true, force: true });
  mkdirSync(ctx, { recursive: true });
  try {
    copyFileSync(p.node.path, join(ctx, 'node'));
    writeFileSync(join(ctx, 'Containerfile'), baseContainerfile(p.debianRef));
    log(`building the base ${p.baseRef} (Debian ${DEBIAN_SUITE} ${DEBIAN_VARIANT} + Node ${p.node.version})`);
    await podman(store, ['build', ...PODMAN_ULIMITS, '--network', 'none', '--pull=never', '-f', join(ctx, 'Containerfile'), '-t', p.baseRef, ctx]);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** `debootstrap --variant=minbase bookworm`, trimmed and tarred, once (about 1-3 minutes). */
async function ensureDebianRootfs(cacheRoot: string, key: string, env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<string> {
  const tarball = join(cacheRoot, `debian-${DEBIAN_SUITE}-${DEBIAN_VARIANT}-${key}.tar`);
  if (existsSync(tarball)) return tarball;
  if (!existsSync('/usr/sbin/debootstrap')) throw new Error('debootstrap is missing (Debian package debootstrap): it makes the local base image');
  const tree = `${tarball}.tmp-${process.pid}.d`;
  rmSync(tree, { recursive: true, force: true });
  const started = Date.now();
  log(`debootstrap --variant=${DEBIAN_VARIANT} ${DEBIAN_SUITE} (once; about 1-3 minutes)`);
  try {
    await run('debootstrap', [`--variant=${DEBIAN_VARIANT}`, DEBIAN_SUITE, tree, debianMirror(env)], log);
    for (const p of ROOTFS_TRIM) {
      const abs = join(tree, p);
      if (!existsSync(abs)) continue;
      if (statSync(abs).isDirectory()) {
        for (const entry of readdirSync(abs)) rmSync(join(abs, entry), { recursive: true, force: true });
      } else {
        rmSync(abs, { force: true });
      }
    }
    await run('tar', ['--numeric-owner', '--xattrs', '-C', tree, '-cf', `${tarball}.tmp-${process.pid}`, '.'], log);
    renameSync(`${tarball}.tmp-${process.pid}`, tarball);
    log(`debootstrap done in ${Math.round((Date.now() - started) / 1000)} s: ${tarball}`);
    return tarball;
  } finally {
    rmSync(tree, { recursive: true, force: true });
    rmSync(`${tarball}.tmp-${process.pid}`, { force: true });
  }
}

function run(cmd: string, args: string[], log: (l: string) => void, cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // nice: the build shares a small machine with whatever else runs
    const child = spawn('nice', ['-n', '10', cmd, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => { output = (output + d.toString()).slice(-8000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) return resolve();
      log(output);
      reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}):\n${output.trim().split('\n').slice(-15).join('\n')}`));
    });
  });
}

/** Makes sure podman's store holds the image (loading its archive when it does not). */
export async function loadImage(image: BuiltImage, store: PodmanStore = podmanStore(defaultImagesCacheRoot())): Promise<void> {
  if (await imageExists(store, image.ref)) {
    const key = (await podman(store, ['image', 'inspect', '--format', '{{index .Labels "io.mailcluster.content-key"}}', image.ref])).trim();
    if (key === image.key) return;
  }
  await podman(store, ['load', '-i', image.archive]);
}
