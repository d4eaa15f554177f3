// Scale event -> every node serving the new peer list, on the real kubelet (issue 12), and the
// images' sizes. Each run is test/e2e/kubelet/kubelet.test.ts (local mode with kubelet +
// containerd + runc; the chart's operator from its image; a MailCluster of 3) with
// MAILCLUSTER_KUBELET_SCALE_EVENTS=<events>: `kubectl scale` to 5, then 2 and 3 in turn, and the
// time from each `kubectl scale` until the last node logged the new peer list (a new node's
// start line or a running node's reload). The events of every run are pooled for p50/p95.
//
//   npm run bench:kubelet                       # 3 runs of 10 events
//   npm run bench:kubelet -- --runs 1 --events 10
//
// Needs root (as the kubelet e2e). Takes the e2e lock itself; run it alone: other load on the
// 2 cores shows up in the figures.
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { ensureImages } from '../../../local/src/images/build.ts';
import { median, parseFlags, percentile, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { runs: 'value', events: 'value' });
const runs = positiveInt(flags, 'runs', 3);
const events = positiveInt(flags, 'events', 10);
if (process.getuid?.() !== 0) {
  console.error('bench:kubelet needs root (the kubelet, containerd and the network namespace)');
  process.exit(1);
}

/** One event line of the e2e: "scale to 5: every node serving the new peer list after 1.91 s (...)". */
function parseEvents(output: string): Array<{ to: number; seconds: number }> {
  return [...output.matchAll(/scale to (\d+): every node serving the new peer list after ([\d.]+) s/g)]
    .map((m) => ({ to: Number(m[1]), seconds: Number(m[2]) }));
}

function runOnce(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['/tmp/mailcluster-e2e.lock', process.execPath, 'node_modules/mocha/bin/mocha.js', 'test/e2e/kubelet/kubelet.test.ts'], {
      env: { ...process.env, MAILCLUSTER_KUBELET_E2E: 'quick', MAILCLUSTER_KUBELET_SCALE_EVENTS: String(events) },
      stdio: ['ignore', 'pipe', 'inherit'],
      // its own process group: flock does not pass a signal on, so a stop goes to the group
      // (mocha, which tears its cluster down, and flock)
      detached: true,
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => { out += c; });
    const stop = () => { try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ } };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    child.on('error', reject);
    child.on('close', (code) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (code === 0) resolve(out);
      else reject(new Error(`the kubelet e2e failed (exit ${code}):\n${out.slice(-4000)}`));
    });
  });
}

const images = await ensureImages();
const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
console.log(table(['image', 'size MiB', 'OCI archive MiB'], images.map((i) => [i.ref, mib(i.sizeBytes), mib(i.archiveBytes)])));

const all: Array<{ to: number; seconds: number }> = [];
const rows: Array<Array<string | number>> = [];
for (let r = 1; r <= runs; r++) {
  const load = loadavg()[0].toFixed(1);
  const found = parseEvents(await runOnce());
  if (found.length < events) throw new Error(`run ${r}: ${found.length} scale events in the e2e's output, expected ${events}`);
  all.push(...found);
  const s = found.map((e) => e.seconds).sort((a, b) => a - b);
  rows.push([r, found.length, median(s).toFixed(2), percentile(s, 95).toFixed(2), Math.max(...found.filter((e) => e.to === 5).map((e) => e.seconds)).toFixed(2), load]);
}
console.log(table(['run', 'events', 'p50 s', 'p95 s', 'to 5 s', 'load before'], rows));
const pooled = all.map((e) => e.seconds).sort((a, b) => a - b);
const up = all.filter((e) => e.to > 2).map((e) => e.seconds).sort((a, b) => a - b);
const down = all.filter((e) => e.to === 2).map((e) => e.seconds).sort((a, b) => a - b);
console.log(`scale event -> every node serving the new peer list, ${pooled.length} events in ${runs} run(s): p50 ${median(pooled).toFixed(2)} s, p95 ${percentile(pooled, 95).toFixed(2)} s (goal p95 < 2 s)`);
console.log(`  up (a new pod must start): p50 ${median(up).toFixed(2)} s, p95 ${percentile(up, 95).toFixed(2)} s over ${up.length}; down: p50 ${median(down).toFixed(2)} s, p95 ${percentile(down, 95).toFixed(2)} s over ${down.length}`);
