/**
 * The API's schema and its checkers agree: whatever the published schema admits, the checker behind it accepts
 * (and, within the schema's documented bounds, the other way round), for ids, file paths, list prefixes and
 * durations, compiled by the API's own validator compiler. Also: JSON bodies are not type-coerced, query
 * strings are.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkWorkspaceId, checkWorkspaceName } from '../../src/contract/ids';
import { MAX_PATH_BYTES, checkPath, checkPrefix } from '../../src/vfs/volumes';
import { parseDuration, parsePolicy } from '../../src/lifecycle';
import { POLICY_DURATION, WINDOW_DURATION, WORKSPACE_ID, WORKSPACE_REF, filePathSchema, parseDateTime, prefixSchema } from '../../src/api/patterns';
import { validatorCompiler } from '../../src/api/validators';

const compile = validatorCompiler();
const validator = (schema: object, httpPart = 'params') => {
  const v = compile({ schema, httpPart, method: 'GET', url: '/' }) as (data: unknown) => boolean;
  return (value: unknown) => v(value) === true;
};

const accepts = (check: () => unknown) => {
  try {
    check();
    return true;
  } catch {
    return false;
  }
};

/** Characters that matter to the path rules, and a few that do not. */
const pathChar = fc.constantFrom('a', 'Z', '0', '-', '.', '/', '\\', ' ', '\u0000', '\u001f', '\u007f', '\u0085', '\u00a0', 'é', '日', '😀', '%', '?', '#');
const pathText = fc.array(pathChar, { maxLength: 24 }).map((a) => a.join(''));

const isAscii = (s: string) => /^[\u0000-\u007f]*$/.test(s);
const chars = (s: string) => [...s].length;

describe('API schema agrees with the checkers', () => {
  it('file paths: the schema admits exactly the valid paths within its length tiers', () => {
    const valid = validator(filePathSchema('p'));
    fc.assert(
      fc.property(pathText, (p) => {
        const checker = accepts(() => checkPath('/' + p));
        const inTier = isAscii(p) ? chars(p) <= 1023 : chars(p) <= 255;
        assert.equal(valid(p), checker && inTier, JSON.stringify(p));
      }),
      { numRuns: 3000 },
    );
  });

  it('file paths: the length tiers always fit the byte limit, and reach it for ASCII', () => {
    const valid = validator(filePathSchema('p'));
    const ascii = 'a'.repeat(MAX_PATH_BYTES - 1);
    assert.ok(valid(ascii) && accepts(() => checkPath('/' + ascii)));
    assert.ok(!valid(ascii + 'a') && !accepts(() => checkPath('/' + ascii + 'a')));
    const emoji = '😀'.repeat(255);
    assert.ok(valid(emoji) && Buffer.byteLength('/' + emoji) <= MAX_PATH_BYTES && accepts(() => checkPath('/' + emoji)));
    assert.ok(!valid(emoji + '😀'));
    assert.ok(valid('é/😀/..a/.b/...'));
  });

  it('list prefixes: the schema admits exactly the valid prefixes within its length tiers', () => {
    const valid = validator(prefixSchema('p'));
    fc.assert(
      fc.property(fc.oneof(pathText, pathText.map((p) => '/' + p)), (p) => {
        const checker = accepts(() => checkPrefix(p));
        const inTier = isAscii(p) ? chars(p) <= 1024 : chars(p) <= 256;
        assert.equal(valid(p), checker && inTier, JSON.stringify(p));
      }),
      { numRuns: 3000 },
    );
  });

  it('workspace names and keys: each schema pattern is its checker', () => {
    const validName = validator({ type: 'string', pattern: WORKSPACE_ID });
    const validRef = validator({ type: 'string', pattern: WORKSPACE_REF });
    const idChar = fc.constantFrom('a', 'z', '0', '9', '-', 'A', '_', '.', '/', ' ', 'é');
    fc.assert(
      fc.property(fc.array(idChar, { maxLength: 140 }).map((a) => a.join('')), (id) => {
        assert.equal(validName(id), accepts(() => checkWorkspaceName(id)), id);
        assert.equal(validRef(id), accepts(() => checkWorkspaceId(id)), id);
      }),
      { numRuns: 3000 },
    );
    assert.ok(validRef('acme.notes') && !validName('acme.notes') && validRef('notes') && validName('notes'));
  });

  it('durations: every policy rung and look-back window the schema admits parses, within the limits', () => {
    const rung = validator({ type: 'string', pattern: POLICY_DURATION });
    const window = validator({ type: 'string', pattern: WINDOW_DURATION });
    const text = fc.tuple(fc.stringMatching(/^[0-9]{1,10}$/), fc.constantFrom('', 's', 'm', 'h', 'd', 'ms', 'x')).map(([n, u]) => n + u);
    fc.assert(
      fc.property(text, (d) => {
        if (rung(d)) assert.ok(accepts(() => parsePolicy({ suspendAfter: d })), `policy ${d}`);
        if (window(d)) assert.ok(accepts(() => parseDuration(d)), `window ${d}`);
      }),
      { numRuns: 3000 },
    );
    for (const d of ['never', '1s', '15m', '24h', '30d', '999d', '99999999s']) assert.ok(rung(d) && accepts(() => parsePolicy({ suspendAfter: d })), d);
    for (const d of ['0s', '500ms', '1h30m', '1000d', '', 'soon']) assert.ok(!rung(d), d);
    for (const d of ['0s', '7d', '1h']) assert.ok(window(d), d);
  });

  it('date-times: every time the schema admits is read', () => {
    const valid = validator({ type: 'string', format: 'date-time' });
    const samples = ['2026-01-01T00:00:00Z', '2026-01-01t00:00:00z', '2026-12-31 23:59:60Z', '0000-01-01T00:00:00+23:59', '2024-02-29T12:00:00.123456789-05:30'];
    for (const t of samples) {
      assert.ok(valid(t), t);
      assert.ok(!Number.isNaN(parseDateTime(t)), t);
    }
    fc.assert(
      fc.property(fc.date({ min: new Date(0), max: new Date(253402300799000), noInvalidDate: true }), (d) => {
        const t = d.toISOString();
        assert.ok(valid(t));
        assert.equal(parseDateTime(t), d.getTime());
      }),
    );
    assert.ok(Number.isNaN(parseDateTime('yesterday')));
  });

  it('JSON bodies are not type-coerced; query strings and path parameters are', () => {
    const schema = { type: 'object', properties: { limit: { type: 'integer' } } };
    assert.equal(validator(schema, 'body')({ limit: '5' }), false);
    const query = { limit: '5' };
    assert.equal(validator(schema, 'querystring')(query), true);
    assert.deepEqual(query, { limit: 5 });
  });
});
