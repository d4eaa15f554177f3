import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fieldTable, withFieldTable } from '../../../scripts/crd-field-docs.ts';

describe('README', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

  it('documents every MailCluster field as the schema describes it (run `npm run docs` when this fails)', () => {
    assert.equal(readme, withFieldTable(readme));
  });

  it('lists the fields DESIGN.md requires', () => {
    const table = fieldTable();
    for (const field of ['spec.replicas', 'spec.hostname', 'spec.relayDomains', 'spec.relayNetworks', 'spec.selfAddresses',
      'spec.image', 'spec.service.type', 'spec.service.port', 'spec.service.annotations', 'spec.service.loadBalancerIP',
      'spec.service.loadBalancerClass', 'spec.service.externalTrafficPolicy', 'spec.service.proxyProtocol',
      'spec.tls.secretName', 'spec.storage.size', 'spec.storage.storageClassName', 'spec.maxMessageSize',
      'spec.drainTimeout', 'spec.resources', 'spec.nodeSelector', 'spec.tolerations', 'spec.affinity',
      'status.observedGeneration', 'status.replicas', 'status.readyReplicas', 'status.selector', 'status.address',
      'status.peers', 'status.selfAddresses', 'status.conditions']) {
      assert.match(table, new RegExp(`\\| \`${field.replace(/\./g, '\\.')}\` \\|`), field);
    }
  });
});
