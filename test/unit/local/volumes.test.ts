import assert from 'node:assert/strict';
import { mkdtemp, readFile, readlink, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { planVolume, referencedObjects, tokenSpecs, tokenKey } from '../../../local/src/agent/volumes.ts';
import { writeAtomically, validatePayloadPath, type Payload } from '../../../local/src/agent/atomic-writer.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const pod: V1Pod = {
  metadata: { name: 'mc-0', namespace: 'mail', uid: 'u-0', labels: { a: '1' } },
  spec: {
    containers: [{ name: 'node', image: 'mailcluster/node', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'env-secret', key: 'k' } } }] }],
    volumes: [
      { name: 'config', projected: { sources: [
        { configMap: { name: 'mc-0-config' } },
        { secret: { name: 'mc-mailq', items: [{ key: 'scheduler.auth', path: 'scheduler.auth', mode: 0o600 }] } },
      ] } },
      { name: 'api', projected: { sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
      ] } },
      { name: 'spool', persistentVolumeClaim: { claimName: 'mc-0-spool' } },
      { name: 'scratch', emptyDir: {} },
    ],
  },
};
const configMaps: Record<string, Record<string, string>> = {
  'mc-0-config': { 'smtpserver.conf': 'PARAM hostname a\n', 'zmailer.conf': 'POSTOFFICE=/var/spool\n' },
  'kube-root-ca.crt': { 'ca.crt': 'CA PEM' },
};
const sources = {
  configMap: (_ns: string, name: string) => (configMaps[name] ? { data: configMaps[name] } : undefined),
  secret: (_ns: string, name: string) => (name === 'mc-mailq' ? { data: { 'scheduler.auth': b64('etrn:pw:ETRN:[127.0.0.0]/8'), other: b64('x') } } : undefined),
  token: (key: string) => (key === tokenKey('api', 'token') ? 'TOKEN' : undefined),
  nodeAllocatable: {},
  podIP: '127.40.0.3',
  hostIP: '127.0.0.1',
};

describe('local pod volumes', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'mc-vol-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('plans projected ConfigMap + Secret items, token, CA and downward API files', () => {
    const config = planVolume(pod, pod.spec!.volumes![0], sources);
    assert.equal(config.kind, 'files');
    if (config.kind !== 'files') return;
    assert.deepEqual([...config.payload.keys()].sort(), ['scheduler.auth', 'smtpserver.conf', 'zmailer.conf']);
    assert.equal(config.payload.get('scheduler.auth')!.mode, 0o600);
    assert.equal(config.payload.get('scheduler.auth')!.content.toString(), 'etrn:pw:ETRN:[127.0.0.0]/8');
    const api = planVolume(pod, pod.spec!.volumes![1], sources);
    assert.ok(api.kind === 'files');
    if (api.kind !== 'files') return;
    assert.equal(api.payload.get('token')!.content.toString(), 'TOKEN');
    assert.equal(api.payload.get('ca.crt')!.content.toString(), 'CA PEM');
    assert.equal(api.payload.get('namespace')!.content.toString(), 'mail');
    assert.deepEqual(planVolume(pod, pod.spec!.volumes![2], sources), { kind: 'claim', claimName: 'mc-0-spool', readOnly: false });
    assert.deepEqual(planVolume(pod, pod.spec!.volumes![3], sources), { kind: 'emptyDir' });
    assert.deepEqual(tokenSpecs(pod), [{ key: 'api/token', audience: undefined, expirationSeconds: 3607 }]);
    const refs = referencedObjects(pod);
    assert.deepEqual([...refs.configMaps].sort(), ['kube-root-ca.crt', 'mc-0-config']);
    assert.deepEqual([...refs.secrets].sort(), ['env-secret', 'mc-mailq']);
  });

  it('refuses a missing ConfigMap unless optional', () => {
    assert.throws(() => planVolume(pod, { name: 'v', configMap: { name: 'absent' } }, sources), /configmap "absent" not found/);
    const optional = planVolume(pod, { name: 'v', configMap: { name: 'absent', optional: true } }, sources);
    assert.ok(optional.kind === 'files' && optional.payload.size === 0);
  });

  it('writes like the kubelet: ..data -> timestamped dir, key symlinks, atomic swap, stale keys removed', async () => {
    const p1: Payload = new Map([['a.conf', { content: Buffer.from('one'), mode: 0o644 }], ['sub/b', { content: Buffer.from('bee'), mode: 0o600 }]]);
    assert.equal(await writeAtomically(dir, p1), true);
    const first = await readlink(join(dir, '..data'));
    assert.match(first, /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{9}$/);
    assert.equal(await readlink(join(dir, 'a.conf')), '..data/a.conf');
    assert.equal(await readFile(join(dir, 'sub', 'b'), 'utf8'), 'bee');
    assert.equal((await stat(join(dir, 'sub', 'b'))).mode & 0o777, 0o600);
    assert.equal(await writeAtomically(dir, p1), false, 'unchanged payload: nothing written');

    const p2: Payload = new Map([['a.conf', { content: Buffer.from('two'), mode: 0o644 }]]);
    assert.equal(await writeAtomically(dir, p2), true);
    const second = await readlink(join(dir, '..data'));
    assert.notEqual(second, first);
    assert.equal(await readFile(join(dir, 'a.conf'), 'utf8'), 'two');
    const entries = (await readdir(dir)).sort();
    assert.deepEqual(entries, [second, '..data', 'a.conf'].sort(), 'old timestamped dir and stale key are gone');
  });

  it('rejects payload paths that leave the volume', () => {
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', '..data']) assert.throws(() => validatePayloadPath(bad), /invalid volume file path/);
  });
});
