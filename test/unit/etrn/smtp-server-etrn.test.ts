// Fails loudly when smtp-server changes under the ETRN extension (see smtp-server-etrn.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import {
  SUPPORTED_SMTP_SERVER_VERSION, checkSmtpServerInternals, installEtrn, installedSmtpServerVersion,
} from '../../../node-image/src/etrn/smtp-server-etrn.ts';

describe('smtp-server internals the ETRN extension relies on', () => {
  it('package.json pins exactly the smtp-server version the extension was written for', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    assert.equal(pkg.dependencies['smtp-server'], SUPPORTED_SMTP_SERVER_VERSION);
    assert.equal(installedSmtpServerVersion(), SUPPORTED_SMTP_SERVER_VERSION);
  });

  it('finds every prototype method and dispatch rule it patches or calls', () => {
    assert.deepEqual(checkSmtpServerInternals(), []);
  });

  it('adds handler_ETRN and wraps handler_EHLO on SMTPConnection', () => {
    installEtrn();
    const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;
    assert.equal(typeof proto.handler_ETRN, 'function');
    assert.match(String(proto.handler_EHLO), /ETRN/);
    installEtrn(); // idempotent
  });
});
