/**
 * Signing and verifying the call-graph policy as it travels from the policy
 * server to sidecars and the STS: a compact JWS (RFC 7515) whose protected
 * header is `{alg, kid, typ: "baton-callgraph+jwt"}` and whose payload is
 * `{version, digest, issuedAt, policy}`. The explicit `typ` stops a token or
 * any other JWS made with the same key from being accepted as a policy
 * (RFC 8725 §3.11), and the algorithm is pinned by the key, never read from
 * the header (RFC 8725 §3.1).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  type webcrypto,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CompactSign, compactVerify } from 'jose';
import { PolicyDocumentMalformedError, PolicySignatureError, PolicySigningKeyError } from './errors.ts';

/** Where the policy server serves the signed policy. */
export const CALLGRAPH_PATH = '/v1/callgraph';
export const POLICY_JWS_TYP = 'baton-callgraph+jwt';
export const POLICY_MEDIA_TYPE = 'application/jose';
export const POLICY_ALGORITHMS = ['ES256', 'EdDSA'] as const;
export type PolicyAlgorithm = (typeof POLICY_ALGORITHMS)[number];

export interface PolicySigningKey {
  readonly alg: PolicyAlgorithm;
  /** RFC 7638 thumbprint of the public key, so a verifier can tell which key signed. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export interface PolicyVerificationKey {
  readonly alg: PolicyAlgorithm;
  readonly kid: string;
  readonly publicKey: KeyObject;
}

/** What the server signs; `policy` is `policyToJSON(policy)`. */
export interface SignedPolicyPayload {
  /** Monotonic: a client refuses a version not above the one it holds. */
  readonly version: number;
  /** `CompiledPolicy.digest` of the signed policy. */
  readonly digest: string;
  /** Epoch seconds. */
  readonly issuedAt: number;
  readonly policy: unknown;
}

export interface VerifiedPolicyDocument {
  readonly payload: SignedPolicyPayload;
  readonly kid: string | undefined;
}

/** Imports a PKCS#8 PEM private key: P-256 (ES256) or Ed25519 (EdDSA); anything else is refused. */
export function importPolicySigningKey(pem: string | KeyObject): PolicySigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = typeof pem === 'string' ? createPrivateKey({ key: pem, format: 'pem' }) : pem;
  } catch (error) {
    throw new PolicySigningKeyError(
      'expected a PKCS#8 PEM private key (ES256 or EdDSA), got text that does not parse as one',
      { cause: error },
    );
  }
  if (privateKey.type !== 'private')
    throw new PolicySigningKeyError(`expected a private key, got a ${privateKey.type} key`);
  const publicKey = createPublicKey(privateKey);
  const alg = algorithmOf(publicKey, PolicySigningKeyError);
  return { alg, kid: thumbprint(publicKey), privateKey, publicKey };
}

/**
 * Imports the key a client verifies with: an SPKI PEM public key, a
 * KeyObject, or the path of a PEM file (what `policy.publicKey` in the
 * sidecar and STS configs holds).
 */
export function importPolicyVerificationKey(key: string | KeyObject): PolicyVerificationKey {
  let publicKey: KeyObject;
  try {
    if (typeof key === 'string') {
      const pem = key.includes('-----BEGIN') ? key : readFileSync(key, 'utf8');
      publicKey = createPublicKey({ key: pem, format: 'pem' });
    } else {
      publicKey = key.type === 'private' ? createPublicKey(key) : key;
    }
  } catch (error) {
    throw new PolicySigningKeyError(
      'expected an SPKI PEM public key (ES256 or EdDSA) or the path of a file holding one',
      { cause: error },
    );
  }
  if (publicKey.type !== 'public')
    throw new PolicySigningKeyError(`expected a public key, got a ${publicKey.type} key`);
  const alg = algorithmOf(publicKey, PolicySigningKeyError);
  return { alg, kid: thumbprint(publicKey), publicKey };
}

export async function signPolicy(payload: SignedPolicyPayload, key: PolicySigningKey): Promise<string> {
  return await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: POLICY_JWS_TYP })
    .sign(key.privateKey);
}

/**
 * Verifies a signed policy document and checks the payload's shape. It
 * does not check the policy itself: `policyFromJSON` does that, because a
 * valid signature says who sent it, not that it is well formed.
 */
export async function verifyPolicy(jws: string, key: PolicyVerificationKey): Promise<VerifiedPolicyDocument> {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/.test(jws)) {
    throw new PolicyDocumentMalformedError('expected a compact JWS (three base64url parts), got something else');
  }
  let verified: Awaited<ReturnType<typeof compactVerify>>;
  try {
    // RFC 8725 §3.1: the allow-list is the one algorithm of the configured key, never the header's choice.
    verified = await compactVerify(jws, key.publicKey, { algorithms: [key.alg] });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_JWS_INVALID')
      throw new PolicyDocumentMalformedError('expected a compact JWS, got one that does not decode', { cause: error });
    const seen =
      code === 'ERR_JOSE_ALG_NOT_ALLOWED'
        ? `a document signed with another algorithm than ${key.alg}`
        : 'a signature that does not verify with it';
    throw new PolicySignatureError(`expected a policy signed with the configured key (kid ${key.kid}), got ${seen}`, {
      cause: error,
    });
  }
  const { protectedHeader } = verified;
  // RFC 8725 §3.11: explicit typing, so no other JWS made with this key passes as a policy.
  if (protectedHeader.typ !== POLICY_JWS_TYP) {
    throw new PolicySignatureError(
      `expected typ ${POLICY_JWS_TYP}, got ${JSON.stringify(String(protectedHeader.typ ?? '(none)').slice(0, 40))}`,
    );
  }
  if (protectedHeader.crit !== undefined)
    throw new PolicySignatureError('expected no crit header parameters, got some');
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(verified.payload));
  } catch (error) {
    throw new PolicyDocumentMalformedError('expected a JSON payload, got bytes that do not parse as JSON', {
      cause: error,
    });
  }
  return {
    payload: checkPayload(payload),
    kid: typeof protectedHeader.kid === 'string' ? protectedHeader.kid : undefined,
  };
}

function checkPayload(payload: unknown): SignedPolicyPayload {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new PolicyDocumentMalformedError('expected a JSON object payload with version, digest, issuedAt and policy');
  }
  const { version, digest, issuedAt, policy } = payload as Record<string, unknown>;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new PolicyDocumentMalformedError('expected version to be a positive integer');
  }
  if (typeof digest !== 'string' || digest.length === 0 || digest.length > 128)
    throw new PolicyDocumentMalformedError('expected digest to be a non-empty string');
  if (typeof issuedAt !== 'number' || !Number.isFinite(issuedAt))
    throw new PolicyDocumentMalformedError('expected issuedAt to be a number (epoch seconds)');
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy))
    throw new PolicyDocumentMalformedError('expected policy to be a JSON object');
  return { version, digest, issuedAt, policy };
}

export interface GeneratedPolicySigningKey {
  readonly alg: PolicyAlgorithm;
  /** PKCS#8 PEM: for `baton policy-server --signing-key`. */
  readonly privateKeyPem: string;
  /** SPKI PEM: for `policy.publicKey` in sidecar and STS configs. */
  readonly publicKeyPem: string;
}

/** A fresh key pair for the demo and for `baton policy-server keygen`. */
export function generatePolicySigningKey(alg: PolicyAlgorithm = 'ES256'): GeneratedPolicySigningKey {
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return {
    alg,
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function algorithmOf(publicKey: KeyObject, ErrorClass: typeof PolicySigningKeyError): PolicyAlgorithm {
  if (publicKey.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (publicKey.asymmetricKeyType === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return 'ES256';
  const seen =
    publicKey.asymmetricKeyType === 'ec'
      ? `an EC key on ${publicKey.asymmetricKeyDetails?.namedCurve ?? 'another curve'}`
      : `a ${publicKey.asymmetricKeyType ?? 'symmetric'} key`;
  throw new ErrorClass(`expected a P-256 (ES256) or Ed25519 (EdDSA) key, got ${seen}`);
}

/** RFC 7638 §3: the required members only, in lexicographic order, no whitespace. */
function thumbprint(publicKey: KeyObject): string {
  const jwk: webcrypto.JsonWebKey = publicKey.export({ format: 'jwk' });
  const required =
    jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(required)).digest('base64url');
}
