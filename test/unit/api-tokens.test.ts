/** Bearer tokens of the HTTP API: parsing WORKBOOKS_TOKENS and a tokens file, refusals, and the made admin token. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TokenConfigError, loadTokens, parseTokenSpec } from '../../src/api/tokens';
import { tempDir } from '../../harness/stack';

describe('API tokens', () => {
  it('maps tokens to tenants, * to the admin, and refuses everything else', () => {
    const t = parseTokenSpec('alpha-token-0123456=acme, beta-token-0123456=globex,root-token-0123456=*', 'WORKBOOKS_TOKENS');
    assert.deepEqual(t.authenticate('Bearer alpha-token-0123456'), { tenant: 'acme', admin: false });
    assert.deepEqual(t.authenticate('bearer   beta-token-0123456 '), { tenant: 'globex', admin: false });
    assert.deepEqual(t.authenticate('Bearer root-token-0123456'), { tenant: null, admin: true });
    for (const h of [undefined, '', 'alpha-token-0123456', 'Basic alpha-token-0123456', 'Bearer', 'Bearer alpha', 'Bearer alpha-token-0123456 extra', 'Bearer ALPHA-TOKEN-0123456']) {
      assert.equal(t.authenticate(h), null, String(h));
    }
  });

  it('refuses malformed specs with the entry that is wrong', () => {
    assert.throws(() => parseTokenSpec('justatoken', 'WORKBOOKS_TOKENS'), /WORKBOOKS_TOKENS entry 1: expected token=tenant/);
    assert.throws(() => parseTokenSpec('aaaaaaaaaaaaaaaa=acme,b=', 'WORKBOOKS_TOKENS'), /entry 2: expected token=tenant/);
    assert.throws(() => parseTokenSpec('aaaaaaaaaaaaaaaa=Acme', 'X'), /tenant 'Acme' is invalid/);
    assert.throws(() => parseTokenSpec('a b=acme', 'X'), TokenConfigError);
    assert.throws(() => parseTokenSpec('same-token-0123456=acme,same-token-0123456=globex', 'X'), /one token is given for two tenants/);
    assert.equal(parseTokenSpec('same-token-0123456=acme,same-token-0123456=acme', 'X').size, 1);
    // Short tokens can be guessed: refused at start.
    assert.throws(() => parseTokenSpec('short-token=acme', 'WORKBOOKS_TOKENS'), /WORKBOOKS_TOKENS entry 1: a token must be 16-512 characters/);
  });

  it('reads a tokens file with comments, adds WORKBOOKS_TOKENS, and reports a missing file', () => {
    const dir = tempDir('wb-tokens-');
    const file = path.join(dir, 'tokens');
    fs.writeFileSync(file, '# tenants\nfile-token-0123456=acme\n\n  other-token-0123456 = globex  # trailing comment\n');
    const { tokens, generatedFile } = loadTokens({ apiTokens: 'env-token-0123456=*', apiTokensFile: file, dataDir: dir });
    assert.equal(generatedFile, null);
    assert.equal(tokens.size, 3);
    assert.deepEqual(tokens.authenticate('Bearer other-token-0123456'), { tenant: 'globex', admin: false });
    assert.throws(() => loadTokens({ apiTokens: null, apiTokensFile: path.join(dir, 'nope'), dataDir: dir }), /WORKBOOKS_TOKENS_FILE .*nope: ENOENT/);
    fs.writeFileSync(file, '# nothing\n');
    assert.throws(() => loadTokens({ apiTokens: null, apiTokensFile: file, dataDir: dir }), /hold no token/);
  });

  it('makes one private admin token in the data dir when none is configured, and keeps it', () => {
    const dir = tempDir('wb-tokens-');
    const first = loadTokens({ apiTokens: null, apiTokensFile: null, dataDir: dir });
    assert.equal(first.generatedFile, path.join(dir, 'api-token'));
    assert.equal(fs.statSync(first.generatedFile!).mode & 0o777, 0o600);
    const token = fs.readFileSync(first.generatedFile!, 'utf8').trim();
    assert.ok(token.length >= 32);
    assert.deepEqual(first.tokens.authenticate(`Bearer ${token}`), { tenant: null, admin: true });
    const second = loadTokens({ apiTokens: null, apiTokensFile: null, dataDir: dir });
    assert.deepEqual(second.tokens.authenticate(`Bearer ${token}`), { tenant: null, admin: true }, 'the same token after a restart');
  });
});
