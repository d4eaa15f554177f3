// pino JSON logs on stdout; MAILCLUSTER_LOG_LEVEL sets the level (default info).
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

// Asynchronous writes: lines written while one write is in flight go out together, so a
// busy node does not pay one write syscall per log line.
export function createLogger(name = 'mailcluster-node'): Logger {
  return pino({ name, level: process.env.MAILCLUSTER_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false }));
}
