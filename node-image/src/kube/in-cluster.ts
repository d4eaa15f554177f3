// The in-cluster API access a pod gets the standard way: KUBERNETES_SERVICE_HOST/PORT and the
// service account's files under /var/run/secrets/kubernetes.io/serviceaccount (under
// MAILCLUSTER_ROOT when that is set: a node run as a plain process by a test, e.g.
// test/e2e/operator/node-configmap-watch.test.ts, which lays out what the projected volume
// would hold). The token is
// read again for every connection: the kubelet rotates projected tokens.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { resolveUnderRoot, type Env } from '../config/load.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface InClusterAccess {
  /** https://host:port */
  server: string;
  host: string;
  port: number;
  token: string;
  ca: Buffer;
  namespace: string;
}

/** Why there is no API access now; `permanent` when retrying cannot help (no API server given). */
export class NoApiAccess extends Error {
  readonly permanent: boolean;
  constructor(message: string, permanent: boolean) {
    super(message);
    this.name = 'NoApiAccess';
    this.permanent = permanent;
  }
}

function readFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new NoApiAccess(`no service account ${what} (${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, false);
  }
}

/** Reads the API server's address and the service account's token, CA and namespace. */
export function inClusterAccess(env: Env): InClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new NoApiAccess('KUBERNETES_SERVICE_HOST is not set', true);
  const port = Number(env.KUBERNETES_SERVICE_PORT || 443);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new NoApiAccess(`KUBERNETES_SERVICE_PORT ${JSON.stringify(env.KUBERNETES_SERVICE_PORT)} is not a port`, true);
  const dir = resolveUnderRoot(SERVICE_ACCOUNT_DIR, env);
  const token = readFile(path.join(dir, 'token'), 'token').toString('utf8').trim();
  if (!token) throw new NoApiAccess(`the service account token ${path.join(dir, 'token')} is empty`, false);
  const ca = readFile(path.join(dir, 'ca.crt'), 'CA');
  const namespace = env.MAILCLUSTER_NAMESPACE || readFile(path.join(dir, 'namespace'), 'namespace').toString('utf8').trim();
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { server: `https://${hostPart}:${port}`, host, port, token, ca, namespace };
}
