/**
 * Workload identities for tests: a development CA and SVIDs written in the
 * csi-driver-spiffe layout under a temporary directory, plus one-off
 * certificates (expired, from another CA, for another ID, a CA certificate
 * carrying a workload's ID) for refusal tests.
 */
import 'reflect-metadata'; // @peculiar/x509 needs it before it loads, as in src/identity/dev-ca.ts.
import { createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as x509 from '@peculiar/x509';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCa, type DevCa, issueSvid, type IssuedSvid, writeDevIdentities } from '../../src/identity/dev-ca.ts';
import type { WorkloadIdentityFiles } from '../../src/identity/workload-identity.ts';
import { createServiceMap, type ServiceMap } from '../../src/identity/service-map.ts';
import type { SpiffeId } from '../../src/identity/spiffe-id.ts';

export const TEST_TRUST_DOMAIN = 'baton.test';

export interface TestIdentities {
  readonly dir: string;
  readonly map: ServiceMap;
  readonly ca: DevCa;
  /** The csi-driver-spiffe file paths of a service's identity. */
  files(service: string): WorkloadIdentityFiles;
  /** A certificate outside the files, e.g. expired or for another ID, signed by this CA unless `ca` is given. */
  issue(spiffeId: SpiffeId, options?: { ca?: DevCa; notBefore?: Date; notAfter?: Date }): Promise<IssuedSvid>;
  /**
   * A CA certificate (basicConstraints CA:TRUE, keyCertSign) signed by this CA that also carries
   * `spiffeId` and everything a TLS peer certificate needs (digitalSignature, serverAuth and
   * clientAuth, 127.0.0.1): OpenSSL takes it as a client or server certificate. X509-SVID §4.1 says
   * no workload may be one.
   */
  issueSigning(spiffeId: SpiffeId): Promise<IssuedSvid>;
  cleanup(): void;
}

export async function makeTestIdentities(
  services: readonly string[],
  options: { validForMs?: number } = {},
): Promise<TestIdentities> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-ids-'));
  const map = createServiceMap({
    trustDomain: TEST_TRUST_DOMAIN,
    namespace: 'test',
    template: '/ns/{namespace}/sa/{service}',
    ids: {},
  });
  await writeDevIdentities({
    dir,
    trustDomain: TEST_TRUST_DOMAIN,
    services: services.map((service) => ({ service, spiffeId: map.idOf(service) })),
    validForMs: options.validForMs ?? 3_600_000,
    layout: 'csi-driver-spiffe',
    now: new Date(),
  });
  const { readFileSync } = await import('node:fs');
  const ca: DevCa = {
    certPem: readFileSync(join(dir, 'ca', 'ca.crt'), 'utf8'),
    keyPem: readFileSync(join(dir, 'ca', 'ca.key'), 'utf8'),
  };
  return {
    dir,
    map,
    ca,
    files: (service) => ({
      certFile: join(dir, service, 'tls.crt'),
      keyFile: join(dir, service, 'tls.key'),
      bundleFile: join(dir, service, 'ca.crt'),
    }),
    issue: (spiffeId, o = {}) =>
      issueSvid(o.ca ?? ca, {
        spiffeId,
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        notBefore: o.notBefore ?? new Date(Date.now() - 60_000),
        notAfter: o.notAfter ?? new Date(Date.now() + 3_600_000),
      }),
    issueSigning: (spiffeId) => issueSigningCertificate(ca, spiffeId),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function issueSigningCertificate(ca: DevCa, spiffeId: SpiffeId): Promise<IssuedSvid> {
  type Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
  const crypto = webcrypto as unknown as Crypto;
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const caCert = new x509.X509Certificate(ca.certPem);
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial.toString('hex'),
      subject: 'O=baton test,CN=a signing certificate posing as a workload',
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      publicKey: keys.publicKey,
      signingKey: createPrivateKey(ca.keyPem).toCryptoKey(algorithm, false, [
        'sign',
      ]) as unknown as x509.X509CertificateCreateWithKeyParams['signingKey'],
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension(
          [
            { type: 'url', value: spiffeId },
            { type: 'dns', value: 'localhost' },
            { type: 'ip', value: '127.0.0.1' },
          ],
          false,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const keyPem = KeyObject.from(keys.privateKey as unknown as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { certPem: cert.toString('pem') + '\n', keyPem };
}

export function otherCa(): Promise<DevCa> {
  return createDevCa({
    trustDomain: TEST_TRUST_DOMAIN,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
  });
}

/**
 * A self-signed certificate and its key (ECDSA P-256), as cert-manager mounts
 * one and `openssl req -x509 -subj /CN=<commonName> -addext subjectAltName=<names>`
 * writes one; `names` in that syntax (`DNS:baton-injector.baton-system.svc,IP:127.0.0.1`).
 */
export async function selfSignedCertificate(
  commonName: string,
  names: string,
  validForMs = 86_400_000,
): Promise<IssuedSvid> {
  type Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1]>;
  const crypto = webcrypto as unknown as Crypto;
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const sans = names.split(',').map((name) => {
    const colon = name.indexOf(':');
    const [kind, value] = [name.slice(0, colon).trim(), name.slice(colon + 1).trim()];
    if (kind !== 'DNS' && kind !== 'IP') throw new Error(`expected DNS:<name> or IP:<address>, got ${name}`);
    return { type: kind === 'DNS' ? ('dns' as const) : ('ip' as const), value };
  });
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${commonName}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + validForMs),
      keys,
      signingAlgorithm: algorithm,
      extensions: [new x509.SubjectAlternativeNameExtension(sans, false)],
    },
    crypto,
  );
  const keyPem = KeyObject.from(keys.privateKey as unknown as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { certPem: cert.toString('pem') + '\n', keyPem };
}
