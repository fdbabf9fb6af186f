import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  isTokenError,
  TokenAlgNotAllowedError,
  TokenMalformedError,
  TokenTooLargeError,
  TokenWrongTypError,
} from '../../src/token/errors.ts';
import { isCanonicalBase64url, preparseToken } from '../../src/token/preparse.ts';
import { hasDuplicateMember, parseJsonObject } from '../../src/token/strict-json.ts';
import { segment } from '../helpers/token.ts';

const options = { maxTokenBytes: 8192, algorithms: new Set(['ES256', 'RS256']) };
const header = { alg: 'ES256', kid: 'k1', typ: 'at+jwt' };
const payload = { iss: 'https://sts.test', sub: 'alice' };
const sig = segment('signature-bytes');
const token = (h: unknown = header, p: unknown = payload, s = sig): string => `${segment(h)}.${segment(p)}.${s}`;

function refusedWith(code: string) {
  return (error: unknown) => isTokenError(error) && error.code === code;
}

describe('token preparse', () => {
  it('returns the decoded header and claims of a well-formed token', () => {
    const parsed = preparseToken(token(), options);
    assert.equal(parsed.header.kid, 'k1');
    assert.equal(parsed.payload.iss, 'https://sts.test');
  });

  it('refuses a token larger than the limit before decoding anything', () => {
    assert.throws(() => preparseToken('a'.repeat(9000), options), refusedWith(TokenTooLargeError.code));
  });

  it('refuses characters outside the base64url alphabet', () => {
    assert.throws(() => preparseToken(token() + '=', options), refusedWith(TokenMalformedError.code));
    assert.throws(() => preparseToken(token().replace('.', ' .'), options), refusedWith(TokenMalformedError.code));
  });

  it('refuses anything but three non-empty segments', () => {
    assert.throws(
      () => preparseToken(`${segment(header)}.${segment(payload)}`, options),
      refusedWith(TokenMalformedError.code),
    );
    assert.throws(
      () => preparseToken(`${segment(header)}.${segment(payload)}.`, options),
      refusedWith(TokenMalformedError.code),
    );
    assert.throws(() => preparseToken(`${token()}.x.y`, options), refusedWith(TokenMalformedError.code));
  });

  it('refuses a re-spelled signature with flipped unused bits', () => {
    const s = segment('ab'); // 'YWI'; 'YWJ' decodes to the same two bytes
    assert.equal(isCanonicalBase64url('YWJ'), false);
    preparseToken(token(header, payload, s), options);
    assert.throws(() => preparseToken(token(header, payload, 'YWJ'), options), refusedWith(TokenMalformedError.code));
  });

  it('refuses alg none in any spelling and algorithms outside the allow-list', () => {
    for (const alg of ['none', 'None', 'NONE', 'HS256', 'ES512']) {
      assert.throws(
        () => preparseToken(token({ ...header, alg }), options),
        refusedWith(TokenAlgNotAllowedError.code),
        alg,
      );
    }
  });

  it('refuses crit and b64 header parameters', () => {
    assert.throws(
      () => preparseToken(token({ ...header, crit: ['exp'] }), options),
      refusedWith(TokenMalformedError.code),
    );
    assert.throws(
      () => preparseToken(token({ ...header, b64: false }), options),
      refusedWith(TokenMalformedError.code),
    );
  });

  it('requires typ at+jwt, case-insensitively and with or without application/', () => {
    for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt', 'Application/At+Jwt'])
      preparseToken(token({ ...header, typ }), options);
    for (const typ of ['JWT', 'jwt', 'application/jwt', 'at+jwt2', undefined, 7]) {
      assert.throws(
        () => preparseToken(token({ ...header, typ }), options),
        refusedWith(TokenWrongTypError.code),
        String(typ),
      );
    }
  });

  it('refuses duplicate member names in the header and the claims set', () => {
    const dupHeader = '{"alg":"ES256","typ":"at+jwt","kid":"a","kid":"b"}';
    assert.throws(() => preparseToken(token(dupHeader), options), refusedWith(TokenMalformedError.code));
    const dupClaims = '{"iss":"https://sts.test","sub":"alice","s\\u0075b":"mallory"}';
    assert.throws(() => preparseToken(token(header, dupClaims), options), refusedWith(TokenMalformedError.code));
  });

  it('refuses a header or claims set that is not a JSON object', () => {
    assert.throws(() => preparseToken(token(header, '[1]'), options), refusedWith(TokenMalformedError.code));
    assert.throws(() => preparseToken(token(header, '{"a":'), options), refusedWith(TokenMalformedError.code));
    assert.throws(() => preparseToken(token('"x"'), options), refusedWith(TokenMalformedError.code));
  });

  it('refuses invalid UTF-8 in the claims set', () => {
    const bad = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url');
    assert.throws(
      () => preparseToken(`${segment(header)}.${bad}.${sig}`, options),
      refusedWith(TokenMalformedError.code),
    );
  });

  it('only ever throws token errors, whatever the input (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (input) => {
        try {
          preparseToken(input, options);
        } catch (error) {
          return isTokenError(error);
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  it('finds duplicate members exactly when JSON.parse would silently drop one (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', '\\u0061'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 5 }),
        (members) => {
          const text = '{' + members.map(([k, v]) => `"${k}":${JSON.stringify(v)}`).join(',') + '}';
          const names = members.map(([k]) => (k === '\\u0061' ? 'a' : k));
          const duplicated = new Set(names).size !== names.length;
          return hasDuplicateMember(text) === duplicated;
        },
      ),
    );
  });

  it('does not mistake string values containing colons or braces for members', () => {
    assert.equal(hasDuplicateMember('{"a":"\\"a\\":{","b":["a",{"a":1}],"c":{"a":2}}'), false);
    assert.deepEqual(parseJsonObject('{"a":1,"a":2}'), { ok: false, reason: 'duplicate-member' });
  });
});
