// The runtime settings the mail node process runs with, wherever it is started (the image's
// ENTRYPOINT, tests and benchmarks that run it as a plain process): all run `node
// bin/mailcluster.js node`, and the shim re-executes that process once (execve: same PID,
// same open files, so no supervisor notices) with these settings, which must be in place
// before V8 and glibc start. Measured with test/bench/spool/memory.ts (200 sessions of
// 10 MB at once): most of the node's peak RSS above idle was garbage waiting for a
// collection (a young generation of up to 3 x 16 MB, and the received chunks it keeps
// alive as external memory) and glibc arenas, one per thread (the delivery thread and 16
// libuv threads), holding freed chunks.
//   --max-semi-space-size=4: a scavenge every few MB of young allocation frees each
//     received chunk soon after its write (4 MB gave the same peak as 2 MB, 218 vs 228 MB
//     median, with no more CPU; 8 MB 242 MB; the default 264 MB);
//   MALLOC_ARENA_MAX=2: freed chunks are reused instead of spread over many arenas.
// MAILCLUSTER_NODE_TUNING=off starts the node without them (for comparison).

export const NODE_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
export const NODE_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
/** Set in the re-executed process: tuning is done (never a second exec). */
export const TUNED_MARK = 'MAILCLUSTER_NODE_TUNED';

export interface Reexec {
  /** argv for execve, argv[0] included. */
  args: string[];
  env: Record<string, string>;
}

/**
 * Whether and how to re-execute the node process with its settings (pure). `argv` and
 * `execArgv` as in process; null when already tuned, turned off, or not the node command.
 * A setting the operator gave already (a V8 flag in execArgv or NODE_OPTIONS, a MALLOC_
 * variable) is kept as given.
 */
export function nodeReexec(execPath: string, execArgv: readonly string[], argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Reexec | null {
  if (argv[2] !== 'node' || env.MAILCLUSTER_NODE_TUNING === 'off') return null;
  return tunedReexec(NODE_V8_FLAGS, execPath, execArgv, argv, env);
}

/**
 * The operator's settings. Measured with bench:scale (MailClusters x 3 replicas, --no-roll;
 * figures in test/bench/README.md, "Operator memory"):
 * - --max-semi-space-size=4, the same young generation as the node's: with V8's default on
 *   this 24 GB machine the new space alone had 128 MB committed (semi-spaces grown to 64 MB)
 *   of a 358 MB RSS (100 x 3), holding API responses already parsed and dropped.
 * - --max-old-space-size=512: not a limit the operator comes near (its heap holds 50-100 MB
 *   live at 300 to 1,000 clusters, most of it client-node's code) but what V8 sizes the old
 *   space's growth by (heap-controller.cc, MaxGrowingFactor): at V8's own limit (half the
 *   memory, at most 4 GB) the old space may grow to 4x the live heap before the next full
 *   collection (160 MB committed for ~55 MB live at 300 clusters), under a smaller one to
 *   1.3-2x. Peak RSS 300 x 3: 252-293 MB -> 178-190 MB (2 and 5 runs), full collections
 *   0.6 -> 0.7-1.1 s of a cold start's 38-49 operator CPU-seconds; 1,000 x 3: 239 MB (386 before).
 *   Given only where V8's own limit would be larger (over 1 GiB of memory): in a smaller
 *   container (the chart's 512Mi limit) V8's own limit is the smaller one already.
 * MAILCLUSTER_OPERATOR_TUNING=off starts the operator without them (for comparison); a flag
 * given in NODE_OPTIONS or on node's command line is kept as given (a fleet much larger
 * than 1,000 clusters may need a larger old space).
 */
export const OPERATOR_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--max-old-space-size=512'];

/** Not added where --max-heap-size is given: V8 refuses to start with it, a semi-space size and an old-space size. */
const OLD_SPACE_FLAG = '--max-old-space-size';

/**
 * The memory this process may use, as Node sizes V8's heap by it: the machine's, or the
 * cgroup's limit when lower (`process.constrainedMemory()`: 0 or about 2^64 when none).
 */
export function usableMemory(total: number, constrained: number | undefined): number {
  return constrained && constrained > 0 ? Math.min(total, constrained) : total;
}

/** The operator's V8 flags for a process that may use `memoryBytes` (pure; see OPERATOR_V8_FLAGS). */
export function operatorV8Flags(memoryBytes: number): string[] {
  return OPERATOR_V8_FLAGS.filter((f) => {
    if (!f.startsWith(`${OLD_SPACE_FLAG}=`)) return true;
    // V8's own old-space limit is half the memory (at least 256 MB): ours only where it is lower.
    return memoryBytes / 2 > Number(f.split('=')[1]) * 1048576;
  });
}

/** As nodeReexec, for `bin/mailcluster.js operator`; `memoryBytes` as usableMemory gives it. */
export function operatorReexec(execPath: string, execArgv: readonly string[], argv: readonly string[], env: Readonly<Record<string, string | undefined>>, memoryBytes = Infinity): Reexec | null {
  if (argv[2] !== 'operator' || argv.includes('--help') || argv.includes('-h') || env.MAILCLUSTER_OPERATOR_TUNING === 'off') return null;
  return tunedReexec(operatorV8Flags(memoryBytes), execPath, execArgv, argv, env);
}

function tunedReexec(v8Flags: readonly string[], execPath: string, execArgv: readonly string[], argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Reexec | null {
  if (env[TUNED_MARK] === '1') return null;
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].map((g) => g.split('=')[0].replace(/_/g, '-'));
  const heapSized = given.includes('--max-heap-size');
  const flags = v8Flags.filter((f) => {
    const name = f.split('=')[0];
    return !given.includes(name) && !(heapSized && name === OLD_SPACE_FLAG);
  });
  // Started with every setting already (the images' ENTRYPOINT and ENV): a second Node start
  // would only cost time, about a third of a new pod's boot on the kubelet.
  if (flags.length === 0 && Object.keys(NODE_MALLOC_ENV).every((k) => env[k] !== undefined)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  for (const [k, v] of Object.entries(NODE_MALLOC_ENV)) out[k] ??= v;
  out[TUNED_MARK] = '1';
  return { args: [execPath, ...execArgv, ...flags, ...argv.slice(1)], env: out };
}
