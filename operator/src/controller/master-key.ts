// The operator's master key (BRIEF contract 1): the one secret the operator keeps, from which
// every cluster's admin token and MAILQv2 password are derived (resources/credentials.ts).
// In a cluster it is a Secret in the operator's own namespace, made by the first replica that
// finds none (create; 409 means another replica won: read that one) and read by name through
// a namespaced Role. Out of a cluster (`--master-key-file`, as test/bench/scale runs it) it is
// a file, made when absent.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { CoreV1Api } from '@kubernetes/client-node';
import { MIN_MASTER_KEY_BYTES } from '../resources/credentials.ts';

export const MASTER_KEY_FIELD = 'key';
export const DEFAULT_MASTER_KEY_SECRET = 'mailcluster-operator-master-key';

export type MasterKeySource = { file: string } | { namespace: string; secretName: string };

const codeOf = (err: unknown): number | undefined => (err as { code?: number }).code ?? (err as { statusCode?: number }).statusCode;

/** A key as stored: hex text (64+ digits), whitespace trimmed. */
export function parseMasterKey(text: string, where: string): Buffer {
  const t = text.trim();
  if (!/^([0-9a-f]{2})+$/i.test(t) || t.length < MIN_MASTER_KEY_BYTES * 2) {
    throw new Error(`${where}: the master key must be at least ${MIN_MASTER_KEY_BYTES * 2} hex digits`);
  }
  return Buffer.from(t, 'hex');
}

export const newMasterKeyText = (): string => `${randomBytes(32).toString('hex')}\n`;

export function masterKeyFromFile(file: string): Buffer {
  try {
    writeFileSync(file, newMasterKeyText(), { flag: 'wx', mode: 0o600 }); // only when absent
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`master key file ${file}: ${(err as Error).message}`);
  }
  return parseMasterKey(readFileSync(file, 'utf8'), `master key file ${file}`);
}

export async function masterKeyFromSecret(core: CoreV1Api, namespace: string, name: string): Promise<Buffer> {
  const where = `Secret ${namespace}/${name}`;
  const read = async (): Promise<Buffer | undefined> => {
    try {
      const s = await core.readNamespacedSecret({ name, namespace });
      const raw = s.data?.[MASTER_KEY_FIELD];
      if (!raw) throw new Error(`${where} has no key "${MASTER_KEY_FIELD}"`);
      return parseMasterKey(Buffer.from(raw, 'base64').toString('utf8'), where);
    } catch (err) {
      if (codeOf(err) === 404) return undefined;
      throw err;
    }
  };
  const have = await read();
  if (have) return have;
  try {
    await core.createNamespacedSecret({
      namespace,
      body: {
        apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
        metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'mailcluster', 'app.kubernetes.io/component': 'master-key' } },
        data: { [MASTER_KEY_FIELD]: Buffer.from(newMasterKeyText()).toString('base64') },
      },
    });
  } catch (err) {
    if (codeOf(err) !== 409) throw err; // another replica made it first
  }
  const made = await read();
  if (!made) throw new Error(`${where} vanished right after it was created`);
  return made;
}

export async function loadMasterKey(source: MasterKeySource, core: CoreV1Api): Promise<Buffer> {
  if ('file' in source) return masterKeyFromFile(source.file);
  try {
    return await masterKeyFromSecret(core, source.namespace, source.secretName);
  } catch (err) {
    const code = codeOf(err);
    const why = code === 403
      ? 'forbidden: the operator needs get on this Secret (by name) and create on Secrets in its namespace (the chart\'s <fullname>-master-key Role)'
      : (err as Error).message;
    throw new Error(`master key Secret ${source.namespace}/${source.secretName}: ${why}`);
  }
}
