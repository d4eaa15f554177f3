// `mailcluster auth-hash`: the password on stdin, a PHC scrypt string on stdout that the
// node's smtp-auth-users check accepts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { node24, repoRoot } from '../../support/mail-node.ts';
import { parseSmtpAuthUsers } from '../../../node-image/src/config/security.ts';
import { verifyPassword } from '../../../node-image/src/smtp/auth.ts';

const run = (input: string) => spawnSync(node24, [join(repoRoot, 'bin', 'mailcluster.js'), 'auth-hash'], { input, encoding: 'utf8', timeout: 30000 });

describe('mailcluster auth-hash', () => {
  it('prints a PHC scrypt string for the password on stdin (one trailing newline dropped)', async () => {
    const r = run('correct horse: battery\n');
    assert.equal(r.status, 0, r.stderr);
    const phc = r.stdout.trim();
    assert.match(phc, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.equal(await verifyPassword('correct horse: battery', phc), true);
    assert.equal(await verifyPassword('correct horse: battery\n', phc), false);
    const fail = (line: number, m: string): never => { throw new Error(`${line}: ${m}`); };
    assert.equal(parseSmtpAuthUsers(`alice:${phc}:RELAY\n`, fail)[0].relay, true, 'fits a users-file line (no colon inside)');
    assert.notEqual(run('correct horse: battery\n').stdout.trim(), phc, 'a fresh salt each time');
  });

  it('refuses an empty password', () => {
    const r = run('');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /empty password/);
  });
});
