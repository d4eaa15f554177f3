// `mailcluster node --config-dir DIR`
// Overlapping spool commits (fdatasync) and reads share libuv's thread pool (4 by
// default); it is sized on first use, which is after this line.
process.env.UV_THREADPOOL_SIZE ??= '16';
import { ConfigError } from './config/types.ts';
import { MailNode } from './node.ts';

const usage = 'usage: mailcluster node --config-dir DIR';

export function parseArgs(args: string[]): { configDir: string } {
  let configDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--config-dir') configDir = args[++i];
    else if (a.startsWith('--config-dir=')) configDir = a.slice('--config-dir='.length);
    else throw new Error(`unknown argument ${JSON.stringify(a)}\n${usage}`);
  }
  if (!configDir) throw new Error(`--config-dir is required\n${usage}`);
  return { configDir };
}

export async function main(args: string[]): Promise<MailNode> {
  let configDir: string;
  try {
    ({ configDir } = parseArgs(args));
  } catch (err) {
    console.error(`mailcluster node: ${(err as Error).message}`);
    process.exit(2);
  }
  try {
    return await MailNode.start(configDir, { signals: true });
  } catch (err) {
    const e = err as Error;
    console.error(`mailcluster node: ${e instanceof ConfigError ? 'bad configuration: ' : ''}${e.message}`);
    process.exit(1);
  }
}
