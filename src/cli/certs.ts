import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LAYOUTS, type Layout } from '../identity/config.ts';
import { writeDevIdentities } from '../identity/dev-ca.ts';
import { createServiceMap } from '../identity/service-map.ts';
import { isTrustDomain, type SpiffeId } from '../identity/spiffe-id.ts';
import { type CliContext, type Command, UsageError } from './command.ts';

const HELP = `Usage: baton certs --out DIR [options] SERVICE...

Writes DEVELOPMENT workload identities: a local CA (DIR/ca/ca.crt and
ca.key, made once and reused) and, for each SERVICE, an X509-SVID whose URI
SAN is the service's SPIFFE ID, in the files csi-driver-spiffe writes in a
pod (DIR/SERVICE/tls.crt, tls.key, ca.crt). Keys are made here and never
leave this machine. Existing certificates that are still fresh are kept;
run it again to renew. This is not a CA for production: in a cluster,
cert-manager's csi-driver-spiffe or SPIRE issues identities (docs/identity.md).

Options:
  --out DIR            where to write (created if missing)
  --trust-domain TD    SPIFFE trust domain (default cluster.local)
  --namespace NS       substituted for {namespace} (default default)
  --template PATH      SPIFFE ID path of a service (default /ns/{namespace}/sa/{service})
  --layout NAME        csi-driver-spiffe (tls.crt, tls.key, ca.crt) or
                       spiffe-helper (svid.pem, svid_key.pem, svid_bundle.pem)
  --valid-for HOURS    lifetime of each certificate in hours (default 168)
  --force              issue new certificates even if the old ones are fresh
  --json               print what was written as JSON`;

export const certsCommand: Command = {
  summary: 'write development workload certificates (a local CA and one SPIFFE SVID per service)',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        out: { type: 'string' },
        'trust-domain': { type: 'string', default: 'cluster.local' },
        namespace: { type: 'string', default: 'default' },
        template: { type: 'string', default: '/ns/{namespace}/sa/{service}' },
        layout: { type: 'string', default: 'csi-driver-spiffe' },
        'valid-for': { type: 'string', default: '168' },
        force: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.out === undefined) throw new UsageError('expected --out DIR');
    if (positionals.length === 0) throw new UsageError('expected at least one SERVICE name');
    const trustDomain = values['trust-domain'];
    if (!isTrustDomain(trustDomain))
      throw new UsageError(
        `expected --trust-domain of lowercase letters, digits, '.', '-' and '_', got '${trustDomain}'`,
      );
    if (!(values.layout in LAYOUTS))
      throw new UsageError(`expected --layout ${Object.keys(LAYOUTS).join(' or ')}, got '${values.layout}'`);
    const hours = Number(values['valid-for']);
    if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 3650)
      throw new UsageError(`expected --valid-for as a number of hours above 0, got '${values['valid-for']}'`);
    const map = createServiceMap({ trustDomain, namespace: values.namespace, template: values.template, ids: {} });
    const services = positionals.map((service) => {
      let spiffeId: SpiffeId;
      try {
        spiffeId = map.idOf(service);
      } catch {
        throw new UsageError(
          `expected SERVICE names as DNS-1123 labels, or service.namespace outside --namespace, got '${service}'`,
        );
      }
      if (map.serviceOf(spiffeId) !== service)
        throw new UsageError(
          `expected SERVICE names as DNS-1123 labels, or service.namespace outside --namespace, got '${service}'`,
        );
      return { service, spiffeId };
    });
    const result = await writeDevIdentities({
      dir: resolve(values.out),
      trustDomain,
      services,
      validForMs: hours * 3_600_000,
      layout: values.layout as Layout,
      now: new Date(),
      force: values.force,
    });
    if (values.json) {
      context.stdout.write(JSON.stringify(result, null, 2) + '\n');
      return 0;
    }
    context.stdout.write(`baton certs: DEVELOPMENT identities under ${resolve(values.out)} (CA in ${result.caDir})\n`);
    for (const identity of result.identities) {
      context.stdout.write(
        `  ${identity.issued ? 'issued' : 'kept  '} ${identity.service.padEnd(16)} ${identity.spiffeId}  until ${identity.notAfter}\n`,
      );
    }
    return 0;
  },
};
