import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { CompactSign } from 'jose';
import {
  generatePolicySigningKey,
  importPolicySigningKey,
  importPolicyVerificationKey,
  POLICY_JWS_TYP,
  signPolicy,
  verifyPolicy,
} from '../../src/policy/distribution/signing.ts';
import {
  PolicyDocumentMalformedError,
  PolicySignatureError,
  PolicySigningKeyError,
} from '../../src/policy/distribution/errors.ts';

const payload = { version: 7, digest: 'abc', issuedAt: 1_700_000_000, policy: { kind: 'CallGraph' } };

function pair(alg: 'ES256' | 'EdDSA' = 'ES256') {
  const generated = generatePolicySigningKey(alg);
  return {
    signing: importPolicySigningKey(generated.privateKeyPem),
    verification: importPolicyVerificationKey(generated.publicKeyPem),
  };
}

async function rejects(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => (error as { code?: string }).code === code);
}

describe('policy signing', () => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    it(`signs and verifies a policy document with ${alg}`, async () => {
      const { signing, verification } = pair(alg);
      const jws = await signPolicy(payload, signing);
      const verified = await verifyPolicy(jws, verification);
      assert.deepEqual(verified.payload, payload);
      assert.equal(verified.kid, verification.kid);
      assert.equal(signing.kid, verification.kid);
    });
  }

  it('refuses a document signed with another key', async () => {
    const jws = await signPolicy(payload, pair().signing);
    await rejects(verifyPolicy(jws, pair().verification), PolicySignatureError.code);
  });

  it('refuses a document whose payload was altered after signing', async () => {
    const { signing, verification } = pair();
    const [header, , signature] = (await signPolicy(payload, signing)).split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload, version: 8 })).toString('base64url');
    await rejects(verifyPolicy(`${header}.${forged}.${signature}`, verification), PolicySignatureError.code);
  });

  it('refuses another typ signed with the right key, so no other JWS passes as a policy', async () => {
    const { signing, verification } = pair();
    const jws = await new CompactSign(Buffer.from(JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .sign(signing.privateKey);
    await rejects(verifyPolicy(jws, verification), PolicySignatureError.code);
  });

  it('refuses an unsigned (alg none) document', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: POLICY_JWS_TYP })).toString('base64url');
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    await rejects(verifyPolicy(`${header}.${body}.`, pair().verification), PolicyDocumentMalformedError.code);
    await rejects(verifyPolicy(`${header}.${body}.AAAA`, pair().verification), PolicySignatureError.code);
  });

  it('refuses garbage', async () => {
    await rejects(verifyPolicy('<html>502 Bad Gateway</html>', pair().verification), PolicyDocumentMalformedError.code);
  });

  it('refuses a signed payload without a positive integer version', async () => {
    const { signing, verification } = pair();
    const jws = await signPolicy({ ...payload, version: 1.5 }, signing);
    await rejects(verifyPolicy(jws, verification), PolicyDocumentMalformedError.code);
  });

  it('accepts only P-256 and Ed25519 signing keys', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    for (const pem of [rsa, p384, 'not a key']) {
      assert.throws(
        () => importPolicySigningKey(pem),
        (error: unknown) => (error as { code?: string }).code === PolicySigningKeyError.code,
      );
    }
  });

  it('never echoes key material in its errors', () => {
    const pem = generatePolicySigningKey().privateKeyPem.replace('PRIVATE KEY-----\n', 'PRIVATE KEY-----\n!!');
    assert.throws(
      () => importPolicySigningKey(pem),
      (error: unknown) => error instanceof Error && !error.message.includes('!!') && !error.message.includes('MI'),
    );
  });
});
