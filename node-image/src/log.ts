// pino JSON logs on stdout; MAILCLUSTER_LOG_LEVEL sets the level (default info).
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(name = 'mailcluster-node'): Logger {
  return pino({ name, level: process.env.MAILCLUSTER_LOG_LEVEL ?? 'info', base: { pid: process.pid } });
}
