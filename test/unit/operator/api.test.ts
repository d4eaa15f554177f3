import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { mailClusterCrd, mailClusterCrdYaml } from '../../../operator/src/api/crd.ts';
import { parseDuration, withDefaults } from '../../../operator/src/api/v1alpha1/index.ts';

interface Node { type?: string; description?: string; properties?: Record<string, Node>; items?: Node; additionalProperties?: Node }

function walk(node: Node, path: string, visit: (n: Node, p: string) => void): void {
  visit(node, path);
  for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, `${path}.${k}`, visit);
  if (node.items) walk(node.items, `${path}[]`, visit);
}

describe('operator API: the MailCluster CRD', () => {
  const crd = mailClusterCrd() as any;
  const version = crd.spec.versions[0];
  const schema = version.schema.openAPIV3Schema;

  it('the committed crds/ file is the generated one (run `npm run crds` when this fails)', () => {
    const committed = readFileSync(new URL('../../../crds/mailclusters.mailcluster.io.yaml', import.meta.url), 'utf8');
    assert.equal(committed, mailClusterCrdYaml(), 'crds/mailclusters.mailcluster.io.yaml is stale: run `npm run crds`');
  });

  it('has the names, scope, subresources and printer columns of the contract', () => {
    assert.equal(crd.metadata.name, 'mailclusters.mailcluster.io');
    assert.equal(crd.spec.group, 'mailcluster.io');
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.deepEqual(crd.spec.names.shortNames, ['mc']);
    assert.equal(crd.spec.names.kind, 'MailCluster');
    assert.equal(version.name, 'v1alpha1');
    assert.deepEqual(version.subresources, {
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
    assert.deepEqual(version.additionalPrinterColumns.map((c: any) => c.name), ['Replicas', 'Ready', 'Address', 'Age']);
  });

  it('describes every field of spec and status (kubectl explain)', () => {
    const missing: string[] = [];
    for (const part of ['spec', 'status']) {
      walk(schema.properties[part], part, (n, p) => { if (!n.description) missing.push(p); });
    }
    assert.deepEqual(missing, []);
  });

  it('bounds replicas, validates names and CIDRs and makes the storage class immutable', () => {
    const spec = schema.properties.spec.properties;
    assert.equal(spec.replicas.minimum, 1);
    assert.equal(spec.replicas.maximum, 100);
    assert.equal(spec.replicas.default, 3);
    assert.ok(spec.hostname.pattern);
    assert.match('smtp.isp.net', new RegExp(spec.hostname.pattern));
    assert.doesNotMatch('not a host', new RegExp(spec.hostname.pattern));
    assert.doesNotMatch('-bad.example', new RegExp(spec.hostname.pattern));
    assert.equal(spec.relayNetworks.items['x-kubernetes-validations'][0].rule, 'isCIDR(self)');
    assert.match(spec.storage['x-kubernetes-validations'][0].rule, /oldSelf\.storageClassName/);
    assert.equal(spec.image.default, 'mailcluster/node:0.1.0');
    assert.equal(spec.service.properties.type.default, 'LoadBalancer');
    assert.equal(spec.service.properties.port.default, 25);
    assert.equal(spec.storage.properties.size.default, '1Gi');
    assert.ok(spec.affinity['x-kubernetes-preserve-unknown-fields']);
  });

  it('the YAML round-trips to the same object', () => {
    const text = mailClusterCrdYaml();
    assert.deepEqual(yaml.load(text), crd);
  });
});

describe('operator API: defaults and durations', () => {
  it('fills the schema defaults, nested objects included', () => {
    const spec = withDefaults({ hostname: 'smtp.isp.net' });
    assert.equal(spec.replicas, 3);
    assert.equal(spec.image, 'mailcluster/node:0.1.0');
    assert.deepEqual(spec.service, { type: 'LoadBalancer', port: 25, proxyProtocol: false });
    assert.deepEqual(spec.storage, { size: '1Gi', retentionPolicy: { whenDeleted: 'Retain' } }, 'claims are kept when the MailCluster is deleted, unless asked otherwise');
    assert.equal(spec.drainTimeout, '5m');
    assert.equal(spec.maxMessageSize, 10485760);
  });

  it('keeps what the user set', () => {
    const spec = withDefaults({ hostname: 'a.example', replicas: 5, service: { type: 'ClusterIP', port: 2525 } });
    assert.equal(spec.replicas, 5);
    assert.deepEqual(spec.service, { type: 'ClusterIP', port: 2525, proxyProtocol: false });
  });

  it('parses Go-style durations and rejects anything else clearly', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.throws(() => parseDuration('5 minutes'), /invalid duration "5 minutes"/);
    assert.throws(() => parseDuration(''), /invalid duration/);
  });
});
