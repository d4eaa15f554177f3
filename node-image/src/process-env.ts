// The runtime settings the mail node process runs with, wherever it is started (the image's
// ENTRYPOINT, local mode's process agent, tests, benchmarks): all run `node
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
 * The operator's settings: the same young generation. Measured with bench:scale (100 x 3):
 * with V8's default on this 24 GB machine the new space alone had 128 MB committed
 * (semi-spaces grown to 64 MB) of a 358 MB RSS, holding API responses already parsed and
 * dropped. MAILCLUSTER_OPERATOR_TUNING=off starts the operator without them (for comparison).
 */
export const OPERATOR_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** As nodeReexec, for `bin/mailcluster.js operator`. */
export function operatorReexec(execPath: string, execArgv: readonly string[], argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Reexec | null {
  if (argv[2] !== 'operator' || argv.includes('--help') || argv.includes('-h') || env.MAILCLUSTER_OPERATOR_TUNING === 'off') return null;
  return tunedReexec(OPERATOR_V8_FLAGS, execPath, execArgv, argv, env);
}

function tunedReexec(v8Flags: readonly string[], execPath: string, execArgv: readonly string[], argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Reexec | null {
  if (env[TUNED_MARK] === '1') return null;
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)];
  const flags = v8Flags.filter((f) => !given.some((g) => g.split('=')[0].replace(/_/g, '-') === f.split('=')[0]));
  // Started with every setting already (the images' ENTRYPOINT and ENV): a second Node start
  // would only cost time, about a third of a new pod's boot on the kubelet.
  if (flags.length === 0 && Object.keys(NODE_MALLOC_ENV).every((k) => env[k] !== undefined)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  for (const [k, v] of Object.entries(NODE_MALLOC_ENV)) out[k] ??= v;
  out[TUNED_MARK] = '1';
  return { args: [execPath, ...execArgv, ...flags, ...argv.slice(1)], env: out };
}
