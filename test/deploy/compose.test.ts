import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { DEMO_SERVICES } from '../../src/demo/mesh.ts';
import { loadPolicyPath } from '../../src/policy/load.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { StsConfigSchema } from '../../src/sts/config.ts';
import { runBaton } from '../helpers/process.ts';

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

interface LongVolume {
  type: string;
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

const compose = parse(readFileSync(at('docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const services = compose.services;
const bakedImage = (s: ComposeService): boolean => s.build !== undefined;

/** A container path as the host sees it, through the service's bind mounts. */
function hostPathOf(service: ComposeService, containerPath: string): string | undefined {
  for (const { source, target } of mountsOf(service)) {
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

function sidecarConfig(name: string) {
  const sidecar = services[`${name}-sidecar`] as ComposeService;
  const file = hostPathOf(sidecar, flagValue(sidecar.command ?? [], '--config') as string) as string;
  return loadConfig(SidecarConfigSchema, { file, env: sidecar.environment ?? {} });
}

describe('docker-compose.yml', () => {
  it('publishes the dev IdP, the gateway and the trace UI on 127.0.0.1 only, and dclint reports no error', () => {
    // The dev IdP issues tokens to anyone: published on every interface, anyone on the network could mint one.
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) assert.match(String(port), /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${port} on loopback only`);
    }
    assert.ok(services.idp?.ports?.length, 'the IdP is published for the quickstart');
    const lint = spawnSync(process.execPath, [at('node_modules/dclint/bin/dclint.cjs'), 'docker-compose.yml'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.doesNotMatch(lint.stdout + lint.stderr, /\berror\b/, lint.stdout);
  });

  it('validates against the compose-spec schema', () => {
    const schema = JSON.parse(readFileSync(at('node_modules/dclint/schemas/compose.schema.json'), 'utf8')) as Record<string, unknown>;
    // ajv knows draft-07 by its canonical id; the schema names it by another spelling.
    delete schema.$schema;
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
  });

  it('mirrors the demo mesh: each demo service is an app with a sidecar in its network namespace', () => {
    for (const name of ['idp', 'policy-server', 'sts', 'redis', 'otel-collector', 'jaeger']) assert.ok(services[name], `service ${name}`);
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
    assert.equal(readFileSync(at('examples/compose/policy/callgraph.yaml'), 'utf8'), readFileSync(at('examples/shop.callgraph.yaml'), 'utf8'));
    const policyDir = hostPathOf(services['policy-server'] as ComposeService, flagValue(services['policy-server']?.command ?? [], '--policy') as string) as string;
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
      for (const flag of service.command.filter((w) => w.startsWith('--'))) assert.ok(help.stdout.includes(flag), `baton ${key} has ${flag} (service ${name})`);
      assert.ok(words.length > 0);
      checked.set(key, help);
    }
    assert.deepEqual([...checked.keys()].sort(), ['demo', 'policy-server', 'redis-acl', 'sidecar', 'sts']);
  });

  it('mounts only files that exist in the project, and declares its named volumes', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const { source } of mountsOf(service)) {
        if (source.startsWith('.')) assert.ok(existsSync(at(source)), `${name} mounts ${source}`);
        else assert.ok(source in compose.volumes, `${name} uses a declared volume ${source}`);
      }
      for (const word of [...(service.entrypoint ?? [])].filter((w) => w.endsWith('.mjs'))) {
        assert.ok(hostPathOf(service, word) !== undefined && existsSync(hostPathOf(service, word) as string), `${name} runs ${word}`);
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
      for (const source of (copied[1] as string).split(' ')) assert.ok(existsSync(at(source)), `Dockerfile copies ${source}`);
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
    const sts = loadConfig(StsConfigSchema, { file: hostPathOf(services.sts as ComposeService, '/etc/baton/sts.yaml') as string });
    for (const name of DEMO_SERVICES) {
      const config = sidecarConfig(name);
      const app = services[name] as ComposeService;
      assert.equal(config.service, name);
      assert.equal(config.sts.clientId, name);
      assert.equal(sts.clients.find((c) => c.id === name)?.secret, config.sts.clientSecret, `${name}'s secret is the one the STS knows`);
      assert.equal(new URL(config.inbound.app).port, flagValue(app.command ?? [], '--port'));
      assert.equal(new URL(flagValue(app.command ?? [], '--outbound') as string).port, String(config.outbound.port));
      assert.equal(config.outbound.defaultUpstreamPort, config.inbound.port, 'other sidecars are reached on their inbound port');
      assert.equal(config.sts.issuer, sts.issuer);
      assert.equal(config.host, '0.0.0.0');
      assert.equal(new URL((services[`${name}-sidecar`] as ComposeService).environment?.BATON_HEALTHCHECK_URL ?? 'http://127.0.0.1:7072/readyz').port, String(config.admin.port));
    }
    assert.deepEqual(sidecarConfig('gateway').externalIssuers.map((i) => i.issuer), sts.externalIssuers.map((i) => i.issuer));
    assert.equal((services.gateway as ComposeService).ports?.[0], `127.0.0.1:${sidecarConfig('gateway').inbound.port}:${sidecarConfig('gateway').inbound.port}`);
  });

  it('runs Redis with the ACL file redis-acl writes, and gives each sidecar and the STS only its own Redis secrets', () => {
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
    assert.equal(`${secretsDir}/${subpathOf(redis, redisAcl)}/users.acl`, aclFile, 'redis loads the file redis-acl wrote');
    assert.equal(redis.depends_on?.['redis-secrets']?.condition, 'service_completed_successfully');
    assert.match(redis.healthcheck?.test.join(' ') ?? '', /--user baton-admin/, 'the probe authenticates: the default user is off');

    const sts = loadConfig(StsConfigSchema, { file: hostPathOf(services.sts as ComposeService, '/etc/baton/sts.yaml') as string });
    assert.equal(subpathOf(services.sts as ComposeService, sts.redis?.passwordFile as string), 'baton-sts');
    for (const name of DEMO_SERVICES) {
      const config = sidecarConfig(name);
      assert.ok(config.redis, `${name} uses Redis`);
      const sidecar = services[`${name}-sidecar`] as ComposeService;
      assert.equal(subpathOf(sidecar, config.redis.passwordFile), `sidecar-${name}`);
      assert.equal(subpathOf(sidecar, config.redis.sealKeyFile), `sidecar-${name}`);
      assert.ok(mountsOf(sidecar).filter((m) => m.source === volume).every((m) => m.read_only === true && m.volume?.subpath === `sidecar-${name}`), `${name}-sidecar mounts only its own secrets, read-only`);
      assert.equal(mountsOf(services[name] as ComposeService).length, 0, `the ${name} app mounts nothing`);
    }
    for (const [name, service] of Object.entries(services)) {
      if (name === 'redis-secrets') continue;
      for (const mount of mountsOf(service).filter((m) => m.source === volume)) assert.ok(mount.volume?.subpath !== undefined && mount.volume.subpath !== '', `${name} mounts a subpath of ${volume}, not all of it`);
    }
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
      assert.deepEqual(Object.keys(services[`${name}-sidecar`]?.depends_on ?? {}).sort(), [name, 'policy-server', 'sts'].sort());
    }
  });
});
