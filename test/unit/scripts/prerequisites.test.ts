import assert from 'node:assert/strict';
import { missingPackages } from '../../../scripts/prerequisites.ts';

describe('test prerequisites', () => {
  it('names each missing package once, by the package that ships the binary', () => {
    const missing = missingPackages([
      { binary: '/nonexistent/smtp-sink', pkg: 'postfix' },
      { binary: '/nonexistent/smtp-source', pkg: 'postfix' },
      { binary: process.execPath, pkg: 'nodejs' },
    ]);
    assert.deepEqual(missing, ['postfix']);
  });
});
