// `PARAM admin-token-sha256 <64 hex> | @<path>` (BRIEF contract 1): the digest literally or
// from a file (whitespace trimmed, watched for reloads); errors name file and line. Parsed by
// sec-node's config/security.ts + security-load.ts (the one parser after the merge).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigDir } from '../../../node-image/src/config/load.ts';
import { ConfigError } from '../../../node-image/src/config/types.ts';
import { makeTempDir, removeTempDir } from '../../support/processes.ts';

const HEX = 'ab'.repeat(32);

describe('config: PARAM admin-token-sha256', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir('admin-token-config');
    mkdirSync(join(dir, 'conf'));
    writeFileSync(join(dir, 'conf', 'zmailer.conf'), `POSTOFFICE=${join(dir, 'spool')}\n`);
  });
  afterEach(() => removeTempDir(dir));
  const load = (line: string) => {
    writeFileSync(join(dir, 'conf', 'smtpserver.conf'), `PARAM hostname n.example\n${line}\n`);
    return loadConfigDir(join(dir, 'conf'), {});
  };

  it('absent: null (the credentialed endpoints answer 403)', () => {
    assert.equal(load('').config.security.adminTokenSha256, null);
  });
  it('literal hex, lowercased', () => {
    assert.equal(load(`PARAM admin-token-sha256 ${HEX.toUpperCase()}`).config.security.adminTokenSha256, HEX);
  });
  it('@file: trimmed, and the file is watched', () => {
    writeFileSync(join(dir, 'digest'), `  ${HEX}\n\n`);
    const loaded = load(`PARAM admin-token-sha256 @${join(dir, 'digest')}`);
    assert.equal(loaded.config.security.adminTokenSha256, HEX);
    assert.ok(loaded.extraFiles.includes(join(dir, 'digest')));
  });
  it('bad values are errors naming file and line', () => {
    for (const [line, re] of [
      ['PARAM admin-token-sha256 1234', /line|:2:.*64 hex/],
      ['PARAM admin-token-sha256', /:2:/],
      [`PARAM admin-token-sha256 @${join(dir, 'missing')}`, /:2:.*ENOENT/],
      ['PARAM admin-token-sha256 @', /:2:/],
    ] as Array<[string, RegExp]>) {
      assert.throws(() => load(line), (e: unknown) => e instanceof ConfigError && re.test(e.message) && e.line === 2, line);
    }
    writeFileSync(join(dir, 'digest'), 'not a digest\n');
    assert.throws(() => load(`PARAM admin-token-sha256 @${join(dir, 'digest')}`), /must hold 64 hex digits/);
  });
});
