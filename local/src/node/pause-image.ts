// The sandbox ("pause") image, made without a registry or podman: one layer holding the
// static pause program (local/go/containerd/pause), written as an OCI image layout archive
// that `ctr images import` takes. Deterministic: same program, same digest.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

export const PAUSE_IMAGE = 'localhost/mailcluster/pause:local';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Writes `<dir>/pause.oci.tar` (once) from the pause program; returns its path. */
export function ensurePauseImage(pauseBinary: string, dir: string, ref: string = PAUSE_IMAGE): string {
  const archive = join(dir, 'pause.oci.tar');
  if (existsSync(archive)) return archive;
  const work = join(dir, `pause-image.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  const rootfs = join(work, 'rootfs');
  const layout = join(work, 'layout');
  mkdirSync(rootfs, { recursive: true });
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  copyFileSync(pauseBinary, join(rootfs, 'pause'));
  chmodSync(join(rootfs, 'pause'), 0o755);
  const layerTar = join(work, 'layer.tar');
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', layerTar, '-C', rootfs, 'pause']);
  const layer = readFileSync(layerTar);
  const blob = (content: Buffer | string) => {
    const digest = sha256(content);
    writeFileSync(join(layout, 'blobs', 'sha256', digest), content);
    return { digest: `sha256:${digest}`, size: Buffer.byteLength(content) };
  };
  const layerBlob = blob(layer);
  const config = JSON.stringify({
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    config: { Entrypoint: ['/pause'], User: '65535:65535' },
    rootfs: { type: 'layers', diff_ids: [layerBlob.digest] },
  });
  const configBlob = blob(config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerBlob }],
  });
  const manifestBlob = blob(manifest);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifestBlob,
      annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').at(-1) },
    }],
  }));
  const tmpArchive = `${archive}.tmp-${process.pid}`;
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', tmpArchive, '-C', layout, '.']);
  renameSync(tmpArchive, archive);
  rmSync(work, { recursive: true, force: true });
  return archive;
}
