// The images `npm run images` makes (podman, local Debian base, OCI archives), run as a
// kubelet would run them under the chart's pod spec: read-only root without podman's
// helper tmpfs mounts, uid/gid 10001, the config directory mounted read-only, a spool the
// user owns. The node answers /healthz, takes mail for a relay domain with a 250, refuses
// a stranger's relay attempt and delivers out of the container to a real smtp-sink (the MX
// a real dnsmasq names); the image holds no dev-only package and no compiler; the operator
// image starts its CLI.
// Binds only 127.46.0.0/16. Run under the e2e lock:
//   flock /tmp/mailcluster-e2e.lock node_modules/.bin/node node_modules/mocha/bin/mocha.js test/e2e/images/images.test.ts
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ensureImages, loadImage, repoRoot, type BuiltImage } from '../../../local/src/images/build.ts';
import { podman, podmanRun, PODMAN_ULIMITS, podmanStore } from '../../../local/src/images/podman.ts';
import { defaultImagesCacheRoot, readInputs } from '../../../local/src/images/build.ts';
import { bareImports } from '../../../local/src/images/deps.ts';
import { IMAGE_SPECS } from '../../../local/src/images/keys.ts';
import { ensureDebianPackages, imageTools } from '../../../scripts/prerequisites.ts';
import { addressIn, freePort, ranges } from '../../support/addresses.ts';
import { makeTempDir, removeTempDir, waitUntil } from '../../support/processes.ts';
import { swaks } from '../../support/swaks.ts';
import { startSmtpSink } from '../../support/smtp-sink.ts';
import { startDns } from '../../support/dnsmasq.ts';

const UID = 10001;
const store = podmanStore(defaultImagesCacheRoot());
// every package the lock marks dev-only (mocha, typescript, the node binary package and
// everything only they need); a devDependency that a production one also needs (some
// @types) is not dev-only and may be there
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8'));
/** The npm packages an image's own sources import. */
const importsOf = (name: string) => [...new Set(readInputs(repoRoot, IMAGE_SPECS.find((s) => s.name === name)!.inputs)
  .filter((f) => /\.(ts|js)$/.test(f.path)).flatMap((f) => bareImports(Buffer.from(f.content).toString('utf8'))))];
const devOnly = Object.entries(lock.packages as Record<string, { dev?: boolean }>).filter(([path, p]) => path && p.dev).map(([path]) => path);

describe('images: node and operator built with podman, run as the pod spec runs them', function () {
  // a cold build debootstraps Debian (1-3 min) and builds both images
  this.timeout(15 * 60_000);
  let images: BuiltImage[];
  const containers: string[] = [];
  const dirs: string[] = [];
  const stops: Array<() => Promise<void>> = [];
  const image = (name: string) => images.find((i) => i.name === name)!;

  /** podman run with this machine's limits; the container is removed in after(). */
  async function runDetached(name: string, args: string[]): Promise<string> {
    const fullName = `mailcluster-images-test-${name}-${process.pid}`;
    containers.push(fullName);
    await podmanRun(store, ['rm', '-f', fullName]);
    return (await podman(store, ['run', '-d', '--name', fullName, '--pull=never', ...PODMAN_ULIMITS, ...args])).trim();
  }

  /** A one-shot command in the image (entrypoint replaced), as uid 10001 on a read-only root. */
  async function runOnce(ref: string, entrypoint: string, args: string[]): Promise<{ code: number; out: string }> {
    const r = await podmanRun(store, ['run', '--rm', '--pull=never', ...PODMAN_ULIMITS, '--network', 'none', '--read-only', '--read-only-tmpfs=false',
      '--user', `${UID}:${UID}`, '--entrypoint', entrypoint, ref, ...args]);
    return { code: r.code, out: r.stdout + r.stderr };
  }

  before(async function () {
    ensureDebianPackages((line) => console.error(line), imageTools);
    images = await ensureImages();
    for (const i of images) {
      console.log(`      ${i.ref}: ${i.source}, image ${(i.sizeBytes / 2 ** 20).toFixed(1)} MiB, archive ${(i.archiveBytes / 2 ** 20).toFixed(1)} MiB`);
      await loadImage(i, store);
    }
  });

  after(async function () {
    for (const c of containers) await podmanRun(store, ['rm', '-f', '-t', '2', c]);
    for (const stop of stops) await stop();
    for (const d of dirs) removeTempDir(d);
  });

  it('saves each image as an OCI archive that names it and loads whole into an empty store', async function () {
    // a store that never saw the build (vfs: plain copies, no mounts left behind)
    const dir = makeTempDir('images-store');
    dirs.push(dir);
    const fresh = { root: join(dir, 'root'), runroot: join(dir, 'run'), driver: 'vfs' };
    for (const i of images) {
      const index = JSON.parse(execFileSync('tar', ['-xOf', i.archive, 'index.json'], { encoding: 'utf8' }));
      assert.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], i.ref);
      assert.match(execFileSync('tar', ['-xOf', i.archive, 'oci-layout'], { encoding: 'utf8' }), /imageLayoutVersion/);
      await podman(fresh, ['load', '-i', i.archive]);
      const format = '{{.Config.User}} {{json .Config.Entrypoint}} {{index .Labels "io.mailcluster.content-key"}}';
      assert.equal(await podman(fresh, ['image', 'inspect', '--format', format, i.ref]), await podman(store, ['image', 'inspect', '--format', format, i.ref]));
    }
  });

  it('runs the node read-only as 10001: /healthz, 250 in, 550 for a stranger, delivered out to smtp-sink', async function () {
    const ip = (i: number) => addressIn(ranges.imageTests, i);
    const address = ip(1);
    const trustedClient = ip(4);
    const stranger = ip(5);
    const [smtp, mailq, admin] = [await freePort(address), await freePort(address), await freePort(address)];
    // real peers on the host: a sink as the MX of both domains, dnsmasq saying so
    const sink = await startSmtpSink({ address: ip(3) });
    stops.push(() => sink.stop());
    const dns = await startDns({
      address: ip(2),
      mx: [{ domain: 'relay.test', host: 'mx.sink.test', preference: 10 }, { domain: 'out.test', host: 'mx.sink.test', preference: 10 }],
      a: [{ name: 'mx.sink.test', ip: sink.address }],
    });
    stops.push(() => dns.stop());
    const dir = makeTempDir('images');
    dirs.push(dir);
    const config = join(dir, 'config');
    const spool = join(dir, 'spool');
    mkdirSync(config);
    mkdirSync(spool);
    // what the pod gets: a config dir it may read, a spool it owns (fsGroup in the pod spec)
    writeFileSync(join(config, 'smtpserver.conf'), [
      'PARAM hostname images-test.mailcluster.test',
      `PARAM BindSmtp 0.0.0.0 ${smtp}`,
      `PARAM BindMailq 0.0.0.0 ${mailq}`,
      `PARAM BindAdmin 0.0.0.0 ${admin}`,
      'PARAM relay-domain relay.test',
      `PARAM relay-network ${trustedClient}/32`,
      `PARAM dns-server ${dns.server}`,
      `PARAM smtp-port ${sink.port}`,
      '',
    ].join('\n'));
    writeFileSync(join(config, 'zmailer.conf'), `SELFADDRESSES=${address}\nPOSTOFFICE=/var/spool/mailcluster\n`);
    chmodSync(dir, 0o755);
    chmodSync(config, 0o755);
    chownSync(spool, UID, UID);

    const id = await runDetached('node', [
      '--read-only', '--read-only-tmpfs=false', '--user', `${UID}:${UID}`, '--network', 'host',
      '-e', `MAILCLUSTER_BIND_ADDRESS=${address}`,
      '-v', `${config}:/etc/mailcluster:ro`, '-v', `${spool}:/var/spool/mailcluster`,
      image('node').ref,
    ]);
    const logs = async () => {
      const r = await podmanRun(store, ['logs', id]);
      return r.stdout + r.stderr;
    };
    await waitUntil('the node in its container to answer /healthz', async () => (await fetch(`http://${address}:${admin}/healthz`)).status === 200, {
      timeoutMs: 30_000, intervalMs: 200,
    }).catch(async (err) => { throw new Error(`${(err as Error).message}\ncontainer output:\n${await logs()}`); });

    const pid = Number((await podman(store, ['inspect', '--format', '{{.State.Pid}}', id])).trim());
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    assert.match(status, /^Gid:\s+10001\s+10001\s+10001\s+10001$/m);
    // the entrypoint's command, re-executed once (same PID) with the node's V8 settings
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    assert.match(cmdline, /^\S*node (--\S+ )*\S*bin\/mailcluster\.js node --config-dir \/etc\/mailcluster/);
    assert.match(cmdline, /--max-semi-space-size=4 /);

    const server = `${address}:${smtp}`;
    const inbound = await swaks({ server, localAddress: stranger, from: 'a@client.test', to: 'someone@relay.test', body: 'for a relay domain\r\n' });
    assert.equal(inbound.lastCode, 250, inbound.transcript);
    const refused = await swaks({ server, localAddress: stranger, from: 'a@client.test', to: 'someone@out.test', quitAfter: 'rcpt' });
    assert.equal(refused.lastCode, 550, refused.transcript);
    const relayed = await swaks({ server, localAddress: trustedClient, from: 'a@client.test', to: 'someone@out.test', body: 'from a relay network\r\n' });
    assert.equal(relayed.lastCode, 250, relayed.transcript);

    // out of the container through its delivery thread, to the MX dnsmasq named
    await sink.waitForCount(2, 30_000);
    await waitUntil('the queue to empty', async () => ((await (await fetch(`http://${address}:${admin}/queue`)).json()) as { total: number }).total === 0, { timeoutMs: 10_000 });
    assert.equal(sink.count(), 2);
    // the spool is on the volume the container's user owns, the only place it writes
    assert.ok(existsSync(join(spool, 'queue')), 'spool queue directory');
    assert.match(await logs(), /"level":/, 'pino JSON lines');

    // as PID 1 a process without a SIGTERM handler ignores SIGTERM, and a kubelet kills it
    // at the grace period's end (137): the node must stop on SIGTERM by itself
    await podman(store, ['stop', '-t', '20', id]);
    const exit = (await podman(store, ['inspect', '--format', '{{.State.ExitCode}}', id])).trim();
    assert.equal(exit, '0', `exit code after SIGTERM; output:\n${await logs()}`);
  });

  it('holds no devDependency and no compiler', async function () {
    for (const name of ['node', 'operator']) {
      const check = `
        const fs = require('node:fs');
        const pkg = ${JSON.stringify({ dev: devOnly, prod: importsOf(name).map((n) => `node_modules/${n}`) })};
        const has = (path) => fs.existsSync('/app/' + path);
        const bins = ['gcc', 'cc', 'g++', 'make', 'tsc', 'mocha', 'npm', 'npx'].filter((b) =>
          ['/usr/bin/', '/usr/local/bin/', '/bin/', '/app/node_modules/.bin/'].some((d) => fs.existsSync(d + b)));
        console.log(JSON.stringify({ dev: pkg.dev.filter(has), missing: pkg.prod.filter((n) => !has(n)), bins, uid: process.getuid(), gid: process.getgid(), version: process.version }));`;
      const r = await runOnce(image(name).ref, 'node', ['-e', check]);
      assert.equal(r.code, 0, r.out);
      const found = JSON.parse(r.out.trim().split('\n').pop()!);
      assert.ok(devOnly.length > 10 && devOnly.includes('node_modules/typescript') && devOnly.includes('node_modules/mocha'), 'the lock names the dev-only packages');
      assert.deepEqual(found.dev, [], `${name}: dev-only packages in the image`);
      assert.ok(importsOf(name).length >= 3);
      assert.deepEqual(found.missing, [], `${name}: packages its sources import missing from the image`);
      assert.deepEqual(found.bins, [], `${name}: compiler or dev tools in the image`);
      assert.equal(found.uid, UID);
      assert.match(found.version, /^v24\./);
    }
  });

  it('declares USER 10001:10001 in both images', async function () {
    for (const i of images) {
      assert.equal((await podman(store, ['image', 'inspect', '--format', '{{.Config.User}}', i.ref])).trim(), `${UID}:${UID}`, i.ref);
    }
  });

  it('starts the operator image: its entrypoint prints the usage for --help', async function () {
    const r = await podmanRun(store, ['run', '--rm', '--pull=never', ...PODMAN_ULIMITS, '--network', 'none', '--read-only', '--read-only-tmpfs=false',
      '--user', `${UID}:${UID}`, image('operator').ref, '--help']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /--leader-elect/);
  });
});
