// `npm run images [-- --force]`: the node and operator images as OCI archives, built with
// podman from their Dockerfiles on a local Debian base (see local/src/images/build.ts).
// Prints each image's reference, archive, size and build time; an unchanged tree is
// answered from the cache in well under a second.
import { ensureDebianPackages, imageTools } from './prerequisites.ts';
import { ensureImages } from '../local/src/images/build.ts';

const force = process.argv.includes('--force');
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const started = Date.now();
try {
  ensureDebianPackages((line) => console.error(line), imageTools);
  const images = await ensureImages({ force });
  for (const image of images) {
    console.log(`${image.ref}  ${image.source === 'built' ? `built in ${image.buildSeconds} s` : 'cached'}  image ${mib(image.sizeBytes)}  archive ${mib(image.archiveBytes)}  ${image.archive}`);
  }
  console.log(`images ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`npm run images failed: ${(err as Error).message}`);
  process.exit(1);
}
