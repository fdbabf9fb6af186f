/**
 * Development certificates: a local trust bundle and one X509-SVID per
 * service, written in the file layout csi-driver-spiffe (or spiffe-helper)
 * would write in a pod, so the demo, docker-compose and tests exercise the
 * same loading and rotation code as production. Like mkcert, keys are made
 * here and never leave the machine; baton is not a CA server, and these
 * certificates are for loopback and development meshes only.
 *
 * ECDSA P-256 throughout: what SPIRE and cert-manager issue by default, and
 * cheap to handshake with.
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it; loaded only with this module.
import { createPrivateKey, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { LAYOUTS, type Layout } from './config.ts';
import type { SpiffeId } from './spiffe-id.ts';

type X509Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
type X509CryptoKey = x509.X509CertificateCreateWithKeyParams['signingKey'];
const crypto = webcrypto as unknown as X509Crypto;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface DevCa {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface IssueOptions {
  readonly spiffeId: SpiffeId;
  /** Extra DNS names (the service name, localhost) for non-SPIFFE clients such as curl. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface IssuedSvid {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function createDevCa(options: { trustDomain: string; notBefore: Date; notAfter: Date }): Promise<DevCa> {
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: `O=baton development,CN=baton dev CA for ${options.trustDomain}`,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      keys,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        // X509-SVID §4.1: a signing certificate may carry the trust domain's SPIFFE ID.
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${options.trustDomain}` }], false),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem') + '\n', keyPem: pkcs8Pem(keys.privateKey) };
}

export async function issueSvid(ca: DevCa, options: IssueOptions): Promise<IssuedSvid> {
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem).toCryptoKey(ALGORITHM, false, ['sign']);
  const names: x509.JsonGeneralName[] = [
    { type: 'url', value: options.spiffeId },
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      // X509-SVID §2: the identity is the URI SAN; the subject is informational.
      subject: `O=baton development,CN=${options.spiffeId.slice(options.spiffeId.lastIndexOf('/') + 1)}`,
      issuer: caCert.subject,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey as unknown as X509CryptoKey,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        // X509-SVID §2: exactly one URI SAN, the SPIFFE ID (critical only when the subject is empty, which it is not).
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem') + '\n', keyPem: pkcs8Pem(keys.privateKey) };
}

// The file names live with the identity config, which the injector also reads without loading the X.509 writer.

export interface WriteDevIdentitiesOptions {
  /** Holds `ca/` (the CA's certificate and key) and one folder per service. */
  readonly dir: string;
  readonly trustDomain: string;
  readonly services: ReadonlyArray<{ readonly service: string; readonly spiffeId: SpiffeId }>;
  readonly validForMs: number;
  readonly layout: Layout;
  readonly now: Date;
  /** Re-issue certificates that exist and are still valid. */
  readonly force?: boolean;
}

export interface WrittenIdentity {
  readonly service: string;
  readonly spiffeId: SpiffeId;
  readonly dir: string;
  readonly issued: boolean;
  readonly notAfter: string;
}

/**
 * Makes (or reuses) the CA under `dir/ca`, then writes a certificate for each
 * service that has none, or one that expires within a tenth of its lifetime.
 * Each file is written to a temporary name and renamed, as the agents do,
 * so a watcher never reads half a file; key files are 0600.
 */
export async function writeDevIdentities(
  options: WriteDevIdentitiesOptions,
): Promise<{ readonly caDir: string; readonly identities: readonly WrittenIdentity[] }> {
  const caDir = join(options.dir, 'ca');
  mkdirSync(options.dir, { recursive: true, mode: 0o755 });
  mkdirSync(caDir, { recursive: true, mode: 0o700 });
  const caCertFile = join(caDir, 'ca.crt');
  const caKeyFile = join(caDir, 'ca.key');
  let ca: DevCa;
  if (existsSync(caCertFile) && existsSync(caKeyFile)) {
    ca = { certPem: readFileSync(caCertFile, 'utf8'), keyPem: readFileSync(caKeyFile, 'utf8') };
  } else {
    // The CA outlives the leaves it signs, so re-runs can reissue without a new bundle.
    ca = await createDevCa({
      trustDomain: options.trustDomain,
      notBefore: minutesBefore(options.now, 5),
      notAfter: new Date(options.now.getTime() + Math.max(options.validForMs * 10, 365 * 86_400_000)),
    });
    writeAtomically(caKeyFile, ca.keyPem, 0o600);
    writeAtomically(caCertFile, ca.certPem, 0o644);
  }
  const names = LAYOUTS[options.layout];
  const identities: WrittenIdentity[] = [];
  for (const { service, spiffeId } of options.services) {
    const dir = join(options.dir, service);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const certFile = join(dir, names.cert);
    const existing =
      !options.force && existsSync(certFile)
        ? reusable(readFileSync(certFile, 'utf8'), spiffeId, ca, options.now)
        : undefined;
    if (existing !== undefined) {
      writeAtomically(join(dir, names.bundle), ca.certPem, 0o644);
      identities.push({ service, spiffeId, dir, issued: false, notAfter: existing });
      continue;
    }
    const notAfter = new Date(options.now.getTime() + options.validForMs);
    const svid = await issueSvid(ca, {
      spiffeId,
      dnsNames: [service, 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      notBefore: minutesBefore(options.now, 5),
      notAfter,
    });
    // Key before certificate: a watcher that sees the new certificate finds its key already there.
    writeAtomically(join(dir, names.key), svid.keyPem, 0o600);
    writeAtomically(certFile, svid.certPem, 0o644);
    writeAtomically(join(dir, names.bundle), ca.certPem, 0o644);
    identities.push({ service, spiffeId, dir, issued: true, notAfter: notAfter.toISOString() });
  }
  return { caDir, identities };
}

/** The existing certificate's expiry, when it is for this ID, from this CA, and not in its last tenth. */
function reusable(certPem: string, spiffeId: SpiffeId, ca: DevCa, now: Date): string | undefined {
  try {
    const cert = new X509Certificate(certPem);
    const caCert = new X509Certificate(ca.certPem);
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    const fresh = now.getTime() < to - (to - from) / 10;
    return fresh && cert.subjectAltName?.includes(`URI:${spiffeId}`) === true && cert.verify(caCert.publicKey)
      ? new Date(to).toISOString()
      : undefined;
  } catch {
    return undefined;
  }
}

export function writeAtomically(file: string, text: string, mode: number): void {
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, text, { mode });
  chmodSync(temporary, mode);
  // rename(2) replaces the file in one step.
  renameSync(temporary, file);
}

function pkcs8Pem(key: X509CryptoKey): string {
  return KeyObject.from(key as unknown as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string;
}

function serial(): string {
  // RFC 5280 §4.1.2.2: positive, at most 20 octets; 16 random bytes with the top bit cleared.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

function minutesBefore(date: Date, minutes: number): Date {
  return new Date(date.getTime() - minutes * 60_000);
}
