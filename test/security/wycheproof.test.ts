/**
 * Wycheproof vectors (C2SP/wycheproof) through baton's signature path:
 * the strict compact-serialization checks of src/token/preparse.ts, keys
 * from a key source (src/token/key-source.ts) and jose's verification
 * with the verifier's algorithm allow-list.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compactVerify, importJWK, type JWK } from 'jose';
import { createLocalKeySource } from '../../src/token/key-source.ts';
import { splitCompactJws } from '../../src/token/preparse.ts';
import { DEFAULT_ALGORITHMS } from '../../src/token/verifier.ts';
import { isTokenError, TokenMalformedError } from '../../src/token/errors.ts';

// Vendored with their licence and provenance (test/fixtures/wycheproof/README.md): nothing outside the repository.
const DIR = fileURLToPath(new URL('../fixtures/wycheproof/', import.meta.url));

function vectors<T>(name: string): T {
  const path = DIR + name;
  // A missing vector file must fail the run, never pass it by testing nothing.
  assert.ok(
    existsSync(path),
    `Wycheproof vectors missing: expected ${path} (vendored from C2SP/wycheproof testvectors_v1/${name}, see test/fixtures/wycheproof/README.md)`,
  );
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

interface EcdsaFile {
  testGroups: Array<{
    publicKeyDer: string;
    tests: Array<{ tcId: number; msg: string; sig: string; result: 'valid' | 'invalid' | 'acceptable' }>;
  }>;
}

interface JwsFile {
  testGroups: Array<{
    comment: string;
    public?: JWK;
    tests: Array<{ tcId: number; comment: string; jws: unknown; result: 'valid' | 'invalid' | 'acceptable' }>;
  }>;
}

/**
 * What jose does for ES256 (RFC 7518 §3.4): WebCrypto ECDSA P-256/SHA-256 over an r||s signature.
 * A JWS signs base64url(header) '.' payload, so a vector's arbitrary msg cannot be wrapped in a
 * compact JWS; the primitive is exercised directly, with the key imported through jose.
 */
async function es256Verify(spkiDer: string, msg: Buffer, sig: Buffer): Promise<boolean> {
  // Some vectors carry keys that only exist as SPKI (no JWK form); those go through WebCrypto's import.
  const key = await crypto.subtle.importKey(
    'spki',
    new Uint8Array(Buffer.from(spkiDer, 'hex')),
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  );
  await importJWK((await crypto.subtle.exportKey('jwk', key)) as JWK, 'ES256');
  try {
    return await crypto.subtle.verify(
      { name: 'ECDSA', hash: 'SHA-256' },
      key,
      new Uint8Array(sig),
      new Uint8Array(msg),
    );
  } catch {
    return false;
  }
}

async function batonJwsVerify(
  jws: unknown,
  publicJwk: JWK | undefined,
): Promise<{ ok: true } | { ok: false; code: string }> {
  try {
    if (typeof jws !== 'string') return { ok: false, code: 'NOT_COMPACT' };
    splitCompactJws(jws, 8192);
    if (publicJwk === undefined) return { ok: false, code: 'NO_PUBLIC_KEY' };
    const keys = createLocalKeySource({ keys: [publicJwk] });
    await compactVerify(jws, keys.getKey, { algorithms: [...DEFAULT_ALGORITHMS] });
    return { ok: true };
  } catch (error) {
    return {
      ok: false,
      code: isTokenError(error) ? error.code : String((error as { code?: unknown }).code ?? (error as Error).name),
    };
  }
}

describe('Wycheproof', () => {
  it('ES256 (P-256, SHA-256, P1363 encoding): accepts every valid vector and rejects every invalid one, r = s = 0 included', async () => {
    const file = vectors<EcdsaFile>('ecdsa_secp256r1_sha256_p1363_test.json');
    let count = 0;
    for (const group of file.testGroups) {
      for (const test of group.tests) {
        const accepted = await es256Verify(
          group.publicKeyDer,
          Buffer.from(test.msg, 'hex'),
          Buffer.from(test.sig, 'hex'),
        );
        // The file has no "acceptable" vectors; were one added, rejecting it is the safe reading.
        const expected = test.result === 'valid';
        assert.equal(accepted, expected, `tcId ${test.tcId}: expected ${test.result}`);
        count++;
      }
    }
    assert.ok(count > 200, `expected the full vector set, ran ${count}`);
  });

  it('JWS: rejects every invalid vector; rejects valid ones only for a disallowed alg or a non-canonical encoding', async () => {
    const file = vectors<JwsFile>('json_web_signature_test.json');
    const allowed = new Set(DEFAULT_ALGORITHMS);
    let accepted = 0;
    for (const group of file.testGroups) {
      for (const test of group.tests) {
        const outcome = await batonJwsVerify(test.jws, group.public);
        const label = `tcId ${test.tcId} (${group.comment}: ${test.comment})`;
        if (test.result !== 'valid') {
          assert.equal(outcome.ok, false, `${label}: expected rejection`);
          continue;
        }
        if (outcome.ok) {
          accepted++;
          continue;
        }
        // baton is stricter than Wycheproof's "valid", by design: HMAC (no public key to verify with) and
        // other algs outside the allow-list (RS384/512, PS384/512, ES512), empty payloads, and lenient
        // base64 spellings (stray characters a decoder would skip) are refused.
        const header = typeof test.jws === 'string' ? safeHeader(test.jws) : undefined;
        const strictOnPurpose =
          outcome.code === 'NO_PUBLIC_KEY' ||
          outcome.code === 'ERR_JOSE_ALG_NOT_ALLOWED' ||
          outcome.code === TokenMalformedError.code ||
          (header !== undefined && !allowed.has(String(header.alg)));
        assert.ok(strictOnPurpose, `${label}: a valid vector was refused with ${outcome.code}`);
      }
    }
    assert.ok(accepted >= 14, `expected the valid RS256/PS256/ES256 vectors to verify, ${accepted} did`);
  });

  it('JWK: rejects every invalid vector, whatever key set the issuer publishes', async () => {
    const file = vectors<{
      testGroups: Array<{
        comment: string;
        public?: JWK | { keys: JWK[] };
        private?: JWK | { keys: JWK[] };
        tests: Array<{ tcId: number; jws: string; result: string }>;
      }>;
    }>('json_web_key_test.json');
    let ran = 0;
    for (const group of file.testGroups) {
      const published = group.public ?? group.private;
      const keys = published === undefined ? [] : 'keys' in published ? published.keys : [published];
      for (const test of group.tests) {
        let accepted: boolean;
        try {
          splitCompactJws(test.jws, 8192);
          await compactVerify(test.jws, createLocalKeySource({ keys }).getKey, { algorithms: [...DEFAULT_ALGORITHMS] });
          accepted = true;
        } catch {
          accepted = false;
        }
        if (test.result === 'invalid')
          assert.equal(accepted, false, `tcId ${test.tcId} (${group.comment}): expected rejection`);
        ran++;
      }
    }
    assert.ok(ran > 20, `expected the JWK vectors to run, ran ${ran}`);
  });
});

function safeHeader(jws: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
