/**
 * Workload identities for tests: a development CA and SVIDs written in the
 * csi-driver-spiffe layout under a temporary directory, plus one-off
 * certificates (expired, from another CA, for another ID) for refusal tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
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
  cleanup(): void;
}

export async function makeTestIdentities(services: readonly string[], options: { validForMs?: number } = {}): Promise<TestIdentities> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-ids-'));
  const map = createServiceMap({ trustDomain: TEST_TRUST_DOMAIN, namespace: 'test', template: '/ns/{namespace}/sa/{service}', ids: {} });
  await writeDevIdentities({ dir, trustDomain: TEST_TRUST_DOMAIN, services: services.map((service) => ({ service, spiffeId: map.idOf(service) })), validForMs: options.validForMs ?? 3_600_000, layout: 'csi-driver-spiffe', now: new Date() });
  const { readFileSync } = await import('node:fs');
  const ca: DevCa = { certPem: readFileSync(join(dir, 'ca', 'ca.crt'), 'utf8'), keyPem: readFileSync(join(dir, 'ca', 'ca.key'), 'utf8') };
  return {
    dir,
    map,
    ca,
    files: (service) => ({ certFile: join(dir, service, 'tls.crt'), keyFile: join(dir, service, 'tls.key'), bundleFile: join(dir, service, 'ca.crt') }),
    issue: (spiffeId, o = {}) => issueSvid(o.ca ?? ca, { spiffeId, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], notBefore: o.notBefore ?? new Date(Date.now() - 60_000), notAfter: o.notAfter ?? new Date(Date.now() + 3_600_000) }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function otherCa(): Promise<DevCa> {
  return createDevCa({ trustDomain: TEST_TRUST_DOMAIN, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) });
}
