// isNamespaceTerminating: a create refused in a namespace being deleted is not a reconcile
// failure. The bodies are the Status objects the real kube-apiserver (v1.36) answered in the
// e2e run: one NamespaceTerminating refusal and two other 403s that must stay errors.
import assert from 'node:assert/strict';
import { isNamespaceTerminating } from '../../../operator/src/controller/reconciler.ts';

const status = (reason: string, causes: Array<{ reason: string }>) => JSON.stringify({
  kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403,
  message: 'secrets "relay-peer-tls" is forbidden: unable to create new content in namespace op-e2e-ac977b because it is being terminated',
  details: { name: 'relay-peer-tls', kind: 'secrets', causes: causes.map((c) => ({ ...c, message: `namespace op-e2e-ac977b ${reason}`, field: 'metadata.namespace' })) },
});

describe('operator: a namespace being deleted', () => {
  it('recognises the API server\'s NamespaceTerminating refusal', () => {
    assert.equal(isNamespaceTerminating({ code: 403, body: status('is being terminated', [{ reason: 'NamespaceTerminating' }]) }), true);
  });
  it('keeps every other refusal an error (RBAC, a 403 without the cause, other codes, text bodies)', () => {
    assert.equal(isNamespaceTerminating({ code: 403, body: JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'secrets is forbidden: User "x" cannot get resource "secrets"' }) }), false);
    assert.equal(isNamespaceTerminating({ code: 403, body: status('x', []) }), false);
    assert.equal(isNamespaceTerminating({ code: 409, body: status('x', [{ reason: 'NamespaceTerminating' }]) }), false);
    assert.equal(isNamespaceTerminating({ code: 403, body: 'forbidden' }), false);
    assert.equal(isNamespaceTerminating(new Error('boom')), false);
  });
});
