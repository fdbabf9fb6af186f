import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { PolicyServerConfigSchema } from '../../src/policy/distribution/config.ts';
import { loadConfig } from '../../src/config/load.ts';
import { DEMO_SERVICES } from '../../src/demo/mesh.ts';
import { createServiceMap } from '../../src/identity/service-map.ts';
import { parseSvid } from '../../src/identity/svid.ts';
import { loadPolicyPath } from '../../src/policy/language/load.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { StsConfigSchema } from '../../src/sts/config.ts';
import { runBaton, startProcess } from '../helpers/process.ts';
import { withContract } from '../helpers/deploy.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const at = (path: string): string => `${ROOT}${path.replace(/^\.\//, '')}`;

interface ComposeService {
  image?: string;
  build?: string | { context: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: Array<string | LongVolume>;
  ports?: string[];
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  read_only?: boolean;
}

/** The compose-spec long syntax of a service's volume. */
interface LongVolume {
  type: 'volume' | 'bind';
  source: string;
  target: string;
  read_only?: boolean;
  volume?: { subpath?: string };
}

/** Short (`src:dst[:ro]`) and long volume syntax, as one shape. */
function mountsOf(service: ComposeService): LongVolume[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return v;
    const [source, target, mode] = v.split(':') as [string, string, string | undefined];
    return { type: source.startsWith('.') ? 'bind' : 'volume', source, target, read_only: mode === 'ro' };
  });
}

const IDENTITY_DIR = '/var/run/secrets/spiffe.io';
const IDENTITY_VOLUME = 'baton-identities';
/** The parts that hold a workload identity, by compose service: the name their certificate is issued for. */
const IDENTITY_OF: Record<string, string> = {
  sts: 'baton-sts',
  'policy-server': 'baton-policy-server',
  ...Object.fromEntries(DEMO_SERVICES.map((name) => [`${name}-sidecar`, name])),
};

/** A volume entry as source, target, read-only and subpath, whichever syntax it is written in. */
function mountOf(volume: string | LongVolume): {
  source: string;
  target: string;
  readOnly: boolean;
  subpath: string | undefined;
} {
  if (typeof volume !== 'string')
    return {
      source: volume.source,
      target: volume.target,
      readOnly: volume.read_only === true,
      subpath: volume.volume?.subpath,
    };
  const [source, target, mode] = volume.split(':') as [string, string, string | undefined];
  return { source, target, readOnly: mode === 'ro', subpath: undefined };
}

const compose = parse(readFileSync(at('docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const bakedImage = (s: ComposeService): boolean => s.build !== undefined;

/** A container path as the host sees it, through the service's bind mounts. */
function hostPathOf(service: ComposeService, containerPath: string): string | undefined {
  for (const volume of service.volumes ?? []) {
    const { source, target } = mountOf(volume);
    if (!source.startsWith('.')) continue;
    if (containerPath === target) return at(source);
    if (containerPath.startsWith(`${target}/`)) return at(`${source}${containerPath.slice(target.length)}`);
  }
  return undefined;
}

function flagValue(args: readonly string[], flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index === -1 ? undefined : args[index + 1];
}

// Loaded with baton's own loader; test/helpers/deploy.ts adds the #14 keys the schemas do not have yet.
const SidecarSchema = withContract(SidecarConfigSchema, 'sidecar');
const StsSchema = withContract(StsConfigSchema, 'sts');
const PolicyServerSchema = withContract(PolicyServerConfigSchema, 'policy-server');

interface IdentityKeys {
  transport: { mode: string };
  identity: { certFile: string; keyFile: string; bundleFile: string };
  spiffe: { trustDomain: string; namespace: string; template: string; ids: Record<string, string> };
}
type SidecarWithContract = Static<typeof SidecarConfigSchema> &
  IdentityKeys & {
    inbound: { clientCertificate: string; plaintextPort?: number };
    sts: { authMethod: string; clientSecret?: string; spiffeId?: string };
    policy: { spiffeId?: string };
  };
type StsWithContract = Omit<Static<typeof StsConfigSchema>, 'clients'> &
  IdentityKeys & {
    clients: Array<{ id: string; secret?: string; tlsClientAuth?: boolean; tlsClientAuthSanUri?: string }>;
  };

const sidecarConfig = (name: string): SidecarWithContract => {
  const sidecar = services[`${name}-sidecar`] as ComposeService;
  const file = hostPathOf(sidecar, flagValue(sidecar.command ?? [], '--config') as string) as string;
  return loadConfig(SidecarSchema, { file, env: sidecar.environment ?? {} }) as unknown as SidecarWithContract;
};
const stsConfig = (): StsWithContract => {
  const sts = services.sts as ComposeService;
  return loadConfig(StsSchema, {
    file: hostPathOf(sts, flagValue(sts.command ?? [], '--config') as string) as string,
    env: sts.environment ?? {},
  }) as unknown as StsWithContract;
};
const policyServerConfig = () => {
  const server = services['policy-server'] as ComposeService;
  return loadConfig(PolicyServerSchema, {
    file: hostPathOf(server, flagValue(server.command ?? [], '--config') as string) as string,
  }) as unknown as Static<typeof PolicyServerConfigSchema> & IdentityKeys;
};

/**
 * Compose features and the first releases that run them: Docker Engine (the
 * daemon that must do it) and Docker Compose (the plugin that must pass it
 * on). Each is found in the file by `uses`; the docs must state the highest.
 * Sources: moby v26.0.0 release notes (VolumeOptions.Subpath, API 1.45);
 * docker/compose 3950460 "Add support for volume Subpath option", first in
 * v2.26.0; docker/compose fb3868f "add support for start_interval", first
 * in v2.24.0, with Engine 25.0 (API 1.44).
 */
const COMPOSE_FEATURES: ReadonlyArray<{
  feature: string;
  engine: string;
  compose: string;
  uses: (file: typeof compose) => boolean;
}> = [
  // The floor: docker compose v2 (depends_on conditions, network_mode service:), and BuildKit as the default builder for the Dockerfile's $BUILDPLATFORM.
  { feature: 'docker compose v2 and a BuildKit build', engine: '23.0', compose: '2.0.0', uses: () => true },
  {
    feature: 'healthcheck start_interval',
    engine: '25.0',
    compose: '2.24.0',
    uses: (file) =>
      Object.values(file.services).some(
        (s) => (s.healthcheck as { start_interval?: string } | undefined)?.start_interval !== undefined,
      ),
  },
  {
    feature: 'volume subpath',
    engine: '26.0',
    compose: '2.26.0',
    uses: (file) =>
      Object.values(file.services).some((s) =>
        (s.volumes ?? []).some((v) => typeof v !== 'string' && v.volume?.subpath !== undefined),
      ),
  },
];

const newest = (versions: readonly string[]): string =>
  [...versions].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1) as string;

describe('docker-compose.yml', () => {
  it('publishes the dev IdP, the gateway and the trace UI on 127.0.0.1 only, and dclint reports no error', () => {
    // The dev IdP issues tokens to anyone: published on every interface, anyone on the network could mint one.
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? [])
        assert.match(String(port), /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${port} on loopback only`);
    }
    assert.ok(services.idp?.ports?.length, 'the IdP is published for the quickstart');
    const lint = spawnSync(process.execPath, [at('node_modules/dclint/bin/dclint.cjs'), 'docker-compose.yml'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.doesNotMatch(lint.stdout + lint.stderr, /\berror\b/, lint.stdout);
  });

  it('states at the top of the quickstart, in docs/docker-compose.md and the README, the Docker Engine and Compose versions the features it uses need', () => {
    const used = COMPOSE_FEATURES.filter((f) => f.uses(compose));
    const engine = newest(used.map((f) => f.engine));
    const composeVersion = newest(used.map((f) => f.compose));
    assert.equal(engine, '26.0', 'volume subpath sets the floor today');
    const claim = `Needs Docker Engine ${engine} or later and Docker Compose ${composeVersion} or later`;
    const page = readFileSync(at('docs/docker-compose.md'), 'utf8');
    assert.ok(page.split('\n').slice(0, 5).join(' ').includes(claim), `docs/docker-compose.md opens with "${claim}"`);
    const readme = readFileSync(at('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### The same mesh in docker-compose'));
    assert.ok(
      section.split('\n').slice(0, 4).join(' ').includes(claim),
      `README's docker-compose section opens with "${claim}"`,
    );
    // Every version the page names for a feature is the one the table gives.
    for (const [, version] of page.matchAll(/Docker Engine (\d+(?:\.\d+)?)/g))
      assert.ok(
        COMPOSE_FEATURES.some((f) => f.engine === version || f.engine === `${version}.0`),
        `Docker Engine ${version} is a version the table knows`,
      );
    for (const [, version] of page.matchAll(/Compose (\d+\.\d+(?:\.\d+)?)/g))
      assert.ok(
        COMPOSE_FEATURES.some((f) => f.compose === version || f.compose === `${version}.0`),
        `Compose ${version} is a version the table knows`,
      );
  });

  it('validates against the compose-spec schema', () => {
    const schema = JSON.parse(readFileSync(at('node_modules/dclint/schemas/compose.schema.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    // ajv knows draft-07 by its canonical id; the schema names it by another spelling.
    delete schema.$schema;
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
  });

  it('mirrors the demo mesh: each demo service is an app with a sidecar in its network namespace', () => {
    for (const name of ['idp', 'policy-server', 'sts', 'redis', 'otel-collector', 'jaeger'])
      assert.ok(services[name], `service ${name}`);
    for (const name of DEMO_SERVICES) {
      const app = services[name] as ComposeService;
      const sidecar = services[`${name}-sidecar`] as ComposeService;
      assert.deepEqual(app.command?.slice(0, 4), ['demo', 'app', '--name', name]);
      assert.equal(sidecar.network_mode, `service:${name}`);
      assert.equal(sidecar.command?.[0], 'sidecar');
    }
    const appServices = Object.values(services).filter((s) => s.command?.[0] === 'demo' && s.command[1] === 'app');
    assert.equal(appServices.length, DEMO_SERVICES.length);
  });

  it('runs the same policy as the demo', () => {
    assert.equal(
      readFileSync(at('examples/compose/policy/callgraph.yaml'), 'utf8'),
      readFileSync(at('examples/shop.callgraph.yaml'), 'utf8'),
    );
    const policyDir = hostPathOf(services['policy-server'] as ComposeService, policyServerConfig().policy) as string;
    const { compiled } = loadPolicyPath(policyDir);
    for (const name of DEMO_SERVICES) assert.ok(compiled.hasService(name), `${name} is in the policy`);
  });

  it('names only commands and flags that baton has', async () => {
    const checked = new Map<string, Awaited<ReturnType<typeof runBaton>>>();
    for (const [name, service] of Object.entries(services)) {
      if (!bakedImage(service) || service.command === undefined) continue;
      const words = service.command.filter((w) => !w.startsWith('-'));
      const command = service.command[0] === 'demo' ? ['demo'] : [service.command[0] as string];
      const key = command.join(' ');
      const help = checked.get(key) ?? (await runBaton([...command, '--help']));
      assert.equal(help.code, 0, `baton ${key} --help (service ${name}): ${help.stderr}`);
      for (const flag of service.command.filter((w) => w.startsWith('--')))
        assert.ok(help.stdout.includes(flag), `baton ${key} has ${flag} (service ${name})`);
      assert.ok(words.length > 0);
      checked.set(key, help);
    }
    assert.deepEqual([...checked.keys()].sort(), ['certs', 'demo', 'policy-server', 'redis-acl', 'sidecar', 'sts']);
  });

  it('mounts only files that exist in the project, and declares its named volumes', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const { source } = mountOf(volume);
        if (source.startsWith('.')) assert.ok(existsSync(at(source)), `${name} mounts ${source}`);
        else assert.ok(source in compose.volumes, `${name} uses a declared volume ${source}`);
      }
      for (const word of [...(service.entrypoint ?? [])].filter((w) => w.endsWith('.mjs'))) {
        assert.ok(
          hostPathOf(service, word) !== undefined && existsSync(hostPathOf(service, word) as string),
          `${name} runs ${word}`,
        );
      }
    }
  });

  it('builds baton from the Dockerfile and pins every other image to a version', () => {
    const dockerfile = readFileSync(at('Dockerfile'), 'utf8');
    // The image runs the bundle its build stage made, not the TypeScript sources.
    assert.match(dockerfile, /^RUN npm run build$/m);
    assert.match(dockerfile, /^COPY --from=build \/app\/dist \.\/dist$/m);
    assert.match(dockerfile, /ENTRYPOINT \["node", "\/app\/dist\/baton\.mjs"\]/);
    for (const copied of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const source of (copied[1] as string).split(' '))
        assert.ok(existsSync(at(source)), `Dockerfile copies ${source}`);
    }
    assert.match(dockerfile, /^USER 10001:10001$/m);
    for (const [name, service] of Object.entries(services)) {
      if (bakedImage(service)) {
        assert.equal(service.build, '.', `${name} builds the project's Dockerfile`);
        assert.equal(service.read_only, true, `${name} runs with a read-only root filesystem`);
      } else {
        assert.match(service.image ?? '', /:[0-9][\w.-]*$/, `${name} pins its image to a version`);
      }
    }
  });

  it('gives every sidecar a valid configuration whose identity and ports match its app', () => {
    const sts = stsConfig();
    for (const name of DEMO_SERVICES) {
      const config = sidecarConfig(name);
      const app = services[name] as ComposeService;
      assert.equal(config.service, name);
      assert.equal(config.sts.clientId, name);
      assert.equal(new URL(config.inbound.app).port, flagValue(app.command ?? [], '--port'));
      assert.equal(new URL(flagValue(app.command ?? [], '--outbound') as string).port, String(config.outbound.port));
      assert.equal(
        config.outbound.defaultUpstreamPort,
        config.inbound.port,
        'other sidecars are reached on their inbound port',
      );
      assert.equal(config.sts.issuer, sts.issuer);
      assert.equal(config.host, '0.0.0.0');
      assert.equal(
        new URL(
          (services[`${name}-sidecar`] as ComposeService).environment?.BATON_HEALTHCHECK_URL ??
            'http://127.0.0.1:7072/readyz',
        ).port,
        String(config.admin.port),
      );
    }
    assert.deepEqual(
      sidecarConfig('gateway').externalIssuers.map((i) => i.issuer),
      sts.externalIssuers.map((i) => i.issuer),
    );
    // Only the gateway's ingress-side listener is published, on loopback; the mTLS port stays inside.
    const gateway = sidecarConfig('gateway');
    assert.ok(gateway.inbound.plaintextPort !== undefined, 'the gateway has a listener for the host, outside the mesh');
    assert.deepEqual((services.gateway as ComposeService).ports, [
      `127.0.0.1:${gateway.inbound.plaintextPort}:${gateway.inbound.plaintextPort}`,
    ]);
    for (const name of DEMO_SERVICES.filter((n) => n !== 'gateway'))
      assert.equal(sidecarConfig(name).inbound.plaintextPort, undefined, `${name} has no plaintext listener`);
  });

  it('runs Redis with the ACL file redis-acl writes, gives the STS only its own Redis secrets, and the mtls sidecars none', () => {
    const init = services['redis-secrets'] as ComposeService;
    assert.deepEqual(flagValue(init.command ?? [], '--services')?.split(','), [...DEMO_SERVICES]);
    const secretsDir = flagValue(init.command ?? [], '--dir') as string;
    const aclFile = flagValue(init.command ?? [], '--acl-file') as string;
    const initMount = mountsOf(init).find((m) => m.target === secretsDir);
    assert.ok(initMount && !initMount.read_only);
    const volume = initMount.source;
    /** The subpath of the secrets volume that holds `file` in `service`, if any. */
    const subpathOf = (service: ComposeService, file: string): string | undefined => {
      const mount = mountsOf(service).find((m) => m.source === volume && file.startsWith(`${m.target}/`));
      return mount === undefined ? undefined : (mount.volume?.subpath ?? '');
    };

    const redis = services.redis as ComposeService;
    const redisAcl = flagValue(redis.command ?? [], '--aclfile') as string;
    assert.equal(
      `${secretsDir}/${subpathOf(redis, redisAcl)}/users.acl`,
      aclFile,
      'redis loads the file redis-acl wrote',
    );
    assert.equal(redis.depends_on?.['redis-secrets']?.condition, 'service_completed_successfully');
    assert.match(
      redis.healthcheck?.test.join(' ') ?? '',
      /--user baton-admin/,
      'the probe authenticates: the default user is off',
    );

    const sts = loadConfig(StsConfigSchema, {
      file: hostPathOf(services.sts as ComposeService, '/etc/baton/sts.yaml') as string,
    });
    assert.equal(subpathOf(services.sts as ComposeService, sts.redis?.passwordFile as string), 'baton-sts');
    for (const name of DEMO_SERVICES) {
      // mtls: exchanged tokens are bound to the sidecar's certificate and never shared through Redis.
      assert.equal(sidecarConfig(name).redis, undefined, `${name}'s sidecar uses no Redis in mtls mode`);
      assert.equal(
        mountsOf(services[`${name}-sidecar`] as ComposeService).filter((m) => m.source === volume).length,
        0,
        `${name}-sidecar mounts no Redis secret`,
      );
      assert.equal(mountsOf(services[name] as ComposeService).length, 0, `the ${name} app mounts nothing`);
    }
    for (const [name, service] of Object.entries(services)) {
      if (name === 'redis-secrets') continue;
      for (const mount of mountsOf(service).filter((m) => m.source === volume))
        assert.ok(
          mount.volume?.subpath !== undefined && mount.volume.subpath !== '',
          `${name} mounts a subpath of ${volume}, not all of it`,
        );
    }
  });

  it('runs every part in mtls mode with one trust domain and mapping rule, and reaches other parts over https', () => {
    const sts = stsConfig();
    const policyServer = policyServerConfig();
    const parts: Array<[string, IdentityKeys]> = [
      ['sts', sts],
      ['policy-server', policyServer],
      ...DEMO_SERVICES.map((n): [string, IdentityKeys] => [`${n}-sidecar`, sidecarConfig(n)]),
    ];
    for (const [name, config] of parts) {
      assert.equal(config.transport.mode, 'mtls', `${name} runs in mtls mode`);
      assert.deepEqual(config.spiffe, sts.spiffe, `${name} maps SPIFFE IDs with the STS's rule`);
      for (const file of [config.identity.certFile, config.identity.keyFile, config.identity.bundleFile])
        assert.ok(file.startsWith(`${IDENTITY_DIR}/`), `${name} reads ${file} from its identity mount`);
    }
    assert.match(sts.issuer, /^https:/);
    assert.match(sts.policy.url as string, /^https:\/\/policy-server:/);
    for (const name of DEMO_SERVICES) {
      const config = sidecarConfig(name);
      assert.equal(config.sts.issuer, sts.issuer);
      assert.match(config.policy.url as string, /^https:\/\/policy-server:/);
      assert.equal(
        config.inbound.clientCertificate,
        'required',
        `${name}'s mesh port asks every caller for a certificate`,
      );
      assert.equal(new URL(config.policy.url as string).port, String(policyServer.port));
    }
  });

  it('ships no client secret: every sidecar authenticates to the STS with its certificate (RFC 8705 tls_client_auth)', () => {
    const sts = stsConfig();
    for (const name of DEMO_SERVICES) {
      const config = sidecarConfig(name);
      assert.equal(config.sts.authMethod, 'tls_client_auth', `${name} uses tls_client_auth`);
      assert.equal(config.sts.clientSecret, undefined, `${name} has no client secret`);
      const client = sts.clients.find((c) => c.id === name);
      assert.equal(client?.tlsClientAuth, true, `the STS knows ${name} by certificate`);
      assert.equal(client?.secret, undefined, `the STS holds no secret for ${name}`);
    }
    for (const [name, service] of Object.entries(services)) {
      for (const key of Object.keys(service.environment ?? {}))
        assert.doesNotMatch(key, /SECRET/, `${name} sets no secret in its environment`);
    }
  });

  it('mounts each part only its own identity folder, read-only, and the CA key nowhere but in the certs step', () => {
    const certs = services.certs as ComposeService;
    for (const [name, service] of Object.entries(services)) {
      const mounts = (service.volumes ?? []).map(mountOf).filter((m) => m.source === IDENTITY_VOLUME);
      if (name === 'certs') {
        assert.deepEqual(
          mounts.map((m) => [m.target, m.readOnly, m.subpath]),
          [[flagValue(certs.command ?? [], '--out'), false, undefined]],
        );
        continue;
      }
      const own = IDENTITY_OF[name];
      if (own === undefined) {
        assert.equal(mounts.length, 0, `${name} mounts no identity`);
        continue;
      }
      assert.deepEqual(
        mounts,
        [{ source: IDENTITY_VOLUME, target: IDENTITY_DIR, readOnly: true, subpath: own }],
        `${name} mounts only ${own}/, read-only`,
      );
      assert.equal(
        service.depends_on?.certs?.condition,
        'service_completed_successfully',
        `${name} starts after the certs step`,
      );
    }
  });

  it('lets only the policy server read the policy signing key; the others mount the public key alone', async () => {
    const keygen = services.keygen as ComposeService;
    for (const [name, service] of Object.entries(services)) {
      const mounts = (service.volumes ?? []).map(mountOf).filter((m) => m.source === 'baton-keys');
      if (name === 'keygen' || mounts.length === 0) continue;
      assert.deepEqual(
        mounts.map((m) => [m.readOnly, m.subpath]),
        [[true, name === 'policy-server' ? 'private' : 'public']],
        `${name} mounts baton-keys read-only, ${name === 'policy-server' ? 'private' : 'public'}/ only`,
      );
    }
    // The key generator, run for real, writes the two halves where those mounts expect them.
    const dir = mkdtempSync(join(tmpdir(), 'baton-compose-keys-'));
    try {
      const script = hostPathOf(keygen, (keygen.entrypoint ?? []).find((w) => w.endsWith('.mjs')) as string) as string;
      const run = startProcess(process.execPath, [script, dir]);
      assert.equal(await run.exited, 0, run.stderr());
      const policyServer = policyServerConfig();
      const keysTarget = '/var/lib/baton/keys';
      assert.ok(
        existsSync(join(dir, 'private', policyServer.signingKey.slice(keysTarget.length + 1))),
        'the policy server finds its private key in private/',
      );
      assert.ok(
        existsSync(
          join(dir, 'public', (sidecarConfig('orders').policy.publicKey as string).slice(keysTarget.length + 1)),
        ),
        'a sidecar finds the public key in public/',
      );
      assert.ok(
        existsSync(join(dir, 'public', (stsConfig().policy.publicKey as string).slice(keysTarget.length + 1))),
        'the STS finds the public key in public/',
      );
      assert.equal(existsSync(join(dir, 'public', 'policy-signing.key.pem')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('the certs step', () => {
    let out: string;
    before(() => {
      out = mkdtempSync(join(tmpdir(), 'baton-compose-certs-'));
    });
    after(() => rmSync(out, { recursive: true, force: true }));

    it('issues, with the real CLI, an identity per part that each part loads and maps to its own name', async () => {
      const command = (services.certs as ComposeService).command as string[];
      const target = flagValue(command, '--out') as string;
      const run = await runBaton(command.map((word) => (word === target ? out : word)));
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /DEVELOPMENT/);
      const spiffe = stsConfig().spiffe;
      const map = createServiceMap(spiffe);
      assert.equal(flagValue(command, '--trust-domain'), spiffe.trustDomain);
      assert.equal(flagValue(command, '--namespace'), spiffe.namespace);
      const configs: Record<string, IdentityKeys> = {
        sts: stsConfig(),
        'policy-server': policyServerConfig(),
        ...Object.fromEntries(DEMO_SERVICES.map((n) => [`${n}-sidecar`, sidecarConfig(n)])),
      };
      for (const [name, own] of Object.entries(IDENTITY_OF)) {
        // The container path of each file, as the folder its mount's subpath names.
        const onHost = (file: string) => join(out, own, file.slice(IDENTITY_DIR.length + 1));
        const { identity } = configs[name] as IdentityKeys;
        const svid = parseSvid(
          {
            cert: readFileSync(onHost(identity.certFile), 'utf8'),
            key: readFileSync(onHost(identity.keyFile), 'utf8'),
            bundle: readFileSync(onHost(identity.bundleFile), 'utf8'),
          },
          Date.now(),
        );
        assert.equal(map.serviceOf(svid.spiffeId), own, `${name}'s certificate names ${own}`);
      }
      // The CA's key is outside every part's folder.
      assert.ok(existsSync(join(out, 'ca', 'ca.key')));
      for (const own of Object.values(IDENTITY_OF)) assert.ok(!existsSync(join(out, own, 'ca.key')));
    });
  });

  it("keeps every policy client's policy state on a named volume of its own, so a restarted sidecar or STS refuses a replayed older policy", () => {
    const clients: Array<[string, string | undefined]> = [
      ['sts', (stsConfig().policy as { stateFile?: string }).stateFile],
      ...DEMO_SERVICES.map((name): [string, string | undefined] => [
        `${name}-sidecar`,
        sidecarConfig(name).policy.stateFile,
      ]),
    ];
    const volumes = new Set<string>();
    for (const [name, file] of clients) {
      assert.ok(file, `${name} has policy.stateFile`);
      const mount = mountsOf(services[name] as ComposeService).find((m) => file.startsWith(`${m.target}/`));
      assert.ok(
        mount !== undefined && mount.type === 'volume' && mount.read_only !== true,
        `${name}: ${file} is on a writable named volume`,
      );
      assert.ok(mount.source in compose.volumes, `${name}: volume ${mount.source} is declared`);
      assert.equal(mount.volume?.subpath, undefined);
      volumes.add(mount.source);
    }
    assert.equal(volumes.size, clients.length, 'no two clients share a state file');
    // A named volume starts as a copy of the image's folder: it must exist there, owned by the image's user.
    assert.match(
      readFileSync(at('Dockerfile'), 'utf8'),
      /mkdir -p [^\n]*\/var\/lib\/baton\/policy-state[^\n]*\n && chown -R 10001:10001 \/var\/lib\/baton/,
    );
  });

  it('starts every service only after what it depends on is healthy', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = services[dependency];
        assert.ok(target, `${name} depends on ${dependency}`);
        if (condition === 'service_healthy') assert.ok(target.healthcheck, `${dependency} has a healthcheck`);
      }
    }
    for (const name of DEMO_SERVICES) {
      assert.deepEqual(
        Object.keys(services[`${name}-sidecar`]?.depends_on ?? {}).sort(),
        [name, 'certs', 'policy-server', 'sts'].sort(),
      );
    }
  });
});
