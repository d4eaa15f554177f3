// Pure parts of the queue commands shared by `mailcluster queue` and `kubectl mailcluster
// queue`: the argument parser and the admin request each subcommand makes.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | true>;
}

/**
 * `--name value`, `--name=value`, `-o json`, `-n ns`; flags in `booleans` take no value.
 * `--` ends the flags. Short flags map through `aliases` (e.g. o → output).
 */
export function parseArgs(argv: readonly string[], booleans: ReadonlySet<string>, aliases: Readonly<Record<string, string>> = {}): ParsedArgs {
  const out: ParsedArgs = { positional: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { out.positional.push(...argv.slice(i + 1)); break; }
    const m = /^(--?)([A-Za-z][\w-]*)(?:=(.*))?$/.exec(a);
    if (!m) { out.positional.push(a); continue; }
    const name = m[1] === '-' ? aliases[m[2]] ?? m[2] : m[2];
    if (m[1] === '-' && m[2].length > 1 && !aliases[m[2]]) throw new UsageError(`unknown flag ${a}`);
    if (booleans.has(name)) {
      if (m[3] !== undefined) throw new UsageError(`--${name} takes no value`);
      out.flags[name] = true;
      continue;
    }
    const value = m[3] ?? argv[++i];
    if (value === undefined) throw new UsageError(`${a} needs a value`);
    out.flags[name] = value;
  }
  return out;
}

export const QUEUE_OPERATIONS = ['list', 'show', 'hold', 'release', 'retry', 'delete', 'summary'] as const;
export type QueueOperation = typeof QUEUE_OPERATIONS[number];

export interface AdminRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: Record<string, unknown>;
}

function str(flags: ParsedArgs['flags'], name: string): string | undefined {
  const v = flags[name];
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return v;
}

/** The admin request for `queue <op> [ids...] [--domain D] [--sender S] [--held|--not-held] [--limit N] [--all] [--dsn]`. */
export function queueRequest(op: string, ids: readonly string[], flags: ParsedArgs['flags']): AdminRequest {
  if (!(QUEUE_OPERATIONS as readonly string[]).includes(op)) throw new UsageError(`unknown queue operation ${JSON.stringify(op)} (one of ${QUEUE_OPERATIONS.join(', ')})`);
  const domain = str(flags, 'domain');
  const sender = str(flags, 'sender');
  if (flags.held && flags['not-held']) throw new UsageError('--held and --not-held exclude each other');
  const held = flags.held ? true : flags['not-held'] ? false : undefined;
  const minAge = str(flags, 'min-age');
  if (op === 'list') {
    if (ids.length) throw new UsageError('queue list takes no message ids (filter with --domain, --sender, --held)');
    const q = new URLSearchParams();
    if (domain) q.set('domain', domain);
    if (sender !== undefined) q.set('sender', sender);
    if (held !== undefined) q.set('held', String(held));
    if (minAge !== undefined) q.set('minAgeSeconds', minAge);
    const limit = str(flags, 'limit');
    if (limit !== undefined) q.set('limit', limit);
    const qs = q.toString();
    return { method: 'GET', path: `/queue/messages${qs ? `?${qs}` : ''}` };
  }
  if (op === 'summary') return { method: 'GET', path: '/queue/summary' };
  if (op === 'show') {
    if (ids.length !== 1) throw new UsageError('queue show takes exactly one message id');
    return { method: 'GET', path: `/queue/message?id=${encodeURIComponent(ids[0])}` };
  }
  if (flags.dsn && op !== 'delete') throw new UsageError('--dsn goes with delete only');
  const body: Record<string, unknown> = {};
  if (ids.length > 0) {
    if (flags.all || domain || sender !== undefined || held !== undefined || minAge !== undefined) throw new UsageError('give message ids or --all with filters, not both');
    body.ids = [...ids];
  } else {
    if (!flags.all) throw new UsageError(`queue ${op} needs message ids, or --all (narrowed by --domain, --sender, --held, --min-age)`);
    body.all = true;
    if (domain) body.domain = domain;
    if (sender !== undefined) body.sender = sender;
    if (held !== undefined) body.held = held;
    if (minAge !== undefined) body.minAgeSeconds = Number(minAge);
  }
  if (op === 'delete') body.dsn = flags.dsn === true;
  return { method: 'POST', path: `/queue/${op}`, body };
}

export const QUEUE_BOOLEAN_FLAGS = ['held', 'not-held', 'all', 'dsn', 'help'];

export const QUEUE_USAGE = `queue operations (every one needs the admin token):
  queue list    [--domain D|@D] [--sender S] [--held|--not-held] [--min-age SECONDS] [--limit N]
  queue show    ID
  queue summary
  queue hold    ID... | --all [--domain D] [--sender S] [--min-age SECONDS]
  queue release ID... | --all [...]
  queue retry   ID... | --all [...]
  queue delete  ID... | --all [...] [--dsn]     (--dsn: the sender gets a bounce; default: silently)`;
