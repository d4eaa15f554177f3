import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { containerEnv, expandVars, parseQuantity, resourceField, ContainerConfigError } from '../../../local/src/agent/env.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const pod: V1Pod = {
  metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1', labels: { app: 'web' }, annotations: { note: 'hi' } },
  spec: {
    nodeName: 'local-node', serviceAccountName: 'sa',
    containers: [{
      name: 'main', image: 'mailcluster/echo',
      resources: { limits: { memory: '64Mi' }, requests: { cpu: '250m' } },
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }],
      env: [
        { name: 'GREETING', value: 'hello $(POD_NAME) $$(POD_NAME)' },
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'LATER', value: 'name=$(POD_NAME)' },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
        { name: 'CPU_M', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } },
        { name: 'CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
        { name: 'COLOR', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'color' } } },
        { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'sec', key: 'password' } } },
        { name: 'MAYBE', valueFrom: { secretKeyRef: { name: 'sec', key: 'absent', optional: true } } },
      ],
    }],
  },
};
const sources = {
  configMap: (ns: string, name: string) => (ns === 'shop' && name === 'cfg' ? { data: { color: 'blue', size: 'L' } } : undefined),
  secret: (ns: string, name: string) => (ns === 'shop' && name === 'sec' ? { data: { password: b64('s3cret') } } : undefined),
  nodeAllocatable: { cpu: '2', memory: '1Gi' },
  podIP: '127.40.0.7',
  hostIP: '127.0.0.1',
};

describe('local container environment', () => {
  it('resolves env, envFrom, downward API, resource fields, ConfigMap and Secret keys', () => {
    const env = containerEnv(pod, pod.spec!.containers[0], sources, { BASE: '1' });
    assert.equal(env.BASE, '1');
    assert.equal(env.CFG_color, 'blue');
    assert.equal(env.GREETING, 'hello $(POD_NAME) $(POD_NAME)', 'only earlier variables expand; $$ escapes');
    assert.equal(env.LATER, 'name=web-1');
    assert.equal(env.APP, 'web');
    assert.equal(env.IP, '127.40.0.7');
    assert.equal(env.NODE, 'local-node');
    assert.equal(env.MEM_MI, '64');
    assert.equal(env.CPU_M, '250');
    assert.equal(env.CPU_LIMIT, '2', 'no limit: the node allocatable');
    assert.equal(env.COLOR, 'blue');
    assert.equal(env.PASSWORD, 's3cret');
    assert.ok(!('MAYBE' in env));
  });

  it('fails with CreateContainerConfigError when a referenced key is missing', () => {
    const broken: V1Pod = { ...pod, spec: { containers: [{ name: 'c', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nope' } } }] }] } };
    assert.throws(() => containerEnv(broken, broken.spec!.containers[0], sources, {}), (err: Error) => err instanceof ContainerConfigError && /key "nope" of configmap "cfg"/.test(err.message));
  });

  it('parses quantities and rounds resource fields up', () => {
    assert.equal(parseQuantity('500m'), 0.5);
    assert.equal(parseQuantity('1Gi'), 2 ** 30);
    assert.equal(parseQuantity('2k'), 2000);
    assert.equal(parseQuantity('1e3'), 1000);
    assert.throws(() => parseQuantity('abc'), /invalid quantity/);
    assert.equal(resourceField({ name: 'c', resources: { limits: { cpu: '250m' } } }, 'limits.cpu', undefined, {}), '1');
  });

  it('expands $(VAR) like Kubernetes', () => {
    assert.equal(expandVars('$(A)-$(B)-$$(A)', { A: 'x' }), 'x-$(B)-$(A)');
  });
});
