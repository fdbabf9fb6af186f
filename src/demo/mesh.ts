/**
 * The whole mesh on one machine, as separate processes laid out like the
 * docker-compose file: a dev IdP, the policy server, the STS, and for each
 * of gateway, orders and payments an app with its own sidecar. No Docker,
 * no Redis.
 *
 * mTLS by default, as in production: development workload certificates
 * (src/identity/dev-ca.ts, in the csi-driver-spiffe layout) are written to
 * the mesh's temporary directory, every hop between baton parts is mutual
 * TLS checked by SPIFFE ID, and every token the STS mints is bound to its
 * caller's certificate. The gateway, an entrypoint, also listens in
 * plaintext for callers outside the mesh (the ingress's place).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { Agent, type Dispatcher, request } from 'undici';
import { type DevCa, writeDevIdentities } from '../identity/dev-ca.ts';
import { createServiceMap, type ServiceMap } from '../identity/service-map.ts';
import { parse, stringify } from 'yaml';
import { canonicalServiceName } from '../core/service-name.ts';
import { redisSecretsLayout } from '../redis/acl.ts';
import type { DemoServiceName } from './apps.ts';
import { freePort } from './free-port.ts';
import { type MeshProcess, startProcess, stopProcess, waitForHttp, waitForPort } from './processes.ts';

export const DEMO_SERVICES: readonly DemoServiceName[] = ['gateway', 'orders', 'payments'];
// From the sources this module is src/demo/mesh.ts and the CLI is bin/baton.js; in the
// bundle (scripts/build.ts) it is a chunk next to baton.mjs and the demo policy copied beside it.
const HERE = fileURLToPath(import.meta.url);
const BUNDLED = !HERE.endsWith('.ts');
const BATON_BIN = BUNDLED
  ? join(dirname(HERE), 'baton.mjs')
  : fileURLToPath(new URL('../../bin/baton.js', import.meta.url));
export const DEMO_POLICY = BUNDLED
  ? join(dirname(HERE), 'shop.callgraph.yaml')
  : fileURLToPath(new URL('../../examples/shop.callgraph.yaml', import.meta.url));

export interface ServicePorts {
  readonly app: number;
  /** The sidecar's inbound port: TLS in mtls mode. */
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
  /** Where a caller outside the mesh reaches the service: the gateway's plaintext entry port in mtls mode, else the inbound port. */
  readonly entry: number;
}

/** The SPIFFE rule of the demo mesh: `spiffe://baton.demo/ns/demo/sa/<service>`. */
export const DEMO_SPIFFE = {
  trustDomain: 'baton.demo',
  namespace: 'demo',
  template: '/ns/{namespace}/sa/{service}',
  ids: {},
} as const;
const STS_SERVICE = 'baton-sts';
const POLICY_SERVER_SERVICE = 'baton-policy-server';

export interface MeshIdentities {
  /** Holds `ca/` and one csi-driver-spiffe folder (tls.crt, tls.key, ca.crt) per workload. */
  readonly dir: string;
  readonly map: ServiceMap;
  /** The trust bundle (PEM). */
  readonly bundle: string;
  /** The development CA, for tests that issue more certificates (expired, a second key for one ID). */
  readonly ca: DevCa;
  /** A client for the mesh's https endpoints (readiness probes): trusts the bundle, presents no certificate. */
  readonly dispatcher: Dispatcher;
}

export interface Mesh {
  readonly dir: string;
  readonly idpUrl: string;
  readonly stsUrl: string;
  readonly policyUrl: string;
  /** The STS's and the policy server's plaintext admin ports (/livez, /readyz, /metrics), as Prometheus scrapes them. */
  readonly stsAdminUrl: string;
  readonly policyAdminUrl: string;
  readonly services: Readonly<Record<DemoServiceName, ServicePorts>>;
  readonly processes: readonly MeshProcess[];
  /** Each demo service's name in the call graph: itself, or service.namespace outside the home namespace (`namespaces`). */
  readonly names: Readonly<Record<DemoServiceName, string>>;
  readonly transport: 'mtls' | 'plaintext';
  /** mtls mode: the development identities the mesh runs with. */
  readonly identities: MeshIdentities | undefined;
  process(name: string): MeshProcess;
  /** A user token from the dev IdP, addressed to the gateway. */
  userToken(options: { sub: string; scope: string; acr?: string }): Promise<string>;
  stop(): Promise<void>;
}

export interface MeshOptions {
  readonly policyFile?: string;
  /** Extra environment for every process (e.g. OTEL_* settings). */
  readonly env?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
  /**
   * A Redis the sidecars share exchanged tokens through (the demo itself runs
   * without one): its URL and a directory `baton redis-acl` wrote for the demo services.
   */
  readonly redis?: { readonly url: string; readonly secretsDir: string };
  /** Also write each process's output, as it comes, to `<logDir>/<process name>.log` (e.g. for `baton policy observed`). */
  readonly logDir?: string;
  /**
   * With `logDir`: each process writes its output straight into its file and
   * this process reads none of it (`output()` and `logs` stay empty until a
   * start fails). For a benchmark, where reading every audit line here would
   * take CPU from the load generator.
   */
  readonly logsToFileOnly?: boolean;
  /** More identity providers for the entrypoint (docs/identity-providers.md entries), trusted by the gateway sidecar and the STS beside the dev IdP. */
  readonly externalIssuers?: readonly Readonly<Record<string, unknown>>[];
  /** The script every baton process of the mesh runs (default: the CLI this module belongs to, bin/baton.js from the sources); e.g. a bundle built by scripts/build.ts. */
  readonly entry?: string;
  /** mtls (the default, as in production) or plaintext. */
  readonly transport?: 'mtls' | 'plaintext';
  /** Services whose sidecar passes the verified bearer token to the app (`inbound.forwardToken`). */
  readonly forwardToken?: readonly DemoServiceName[];
  /** Apps already listening on these ports (a test's own app) instead of the demo app for those services. */
  readonly apps?: Partial<Readonly<Record<DemoServiceName, number>>>;
  /** mtls mode: services whose inbound TLS port lets callers without a certificate in (`inbound.clientCertificate: optional`). */
  readonly optionalClientCertificate?: readonly DemoServiceName[];
  /**
   * A mesh across namespaces, as on Kubernetes: the home namespace (the
   * SPIFFE rule's `namespace`), the namespace of each demo service (default
   * the home), and the control plane's own. Each certificate names its
   * process's namespace (`spiffe://baton.demo/ns/<namespace>/sa/<name>`), a
   * service outside the home is `service.namespace` in the call graph (the
   * demo policy is renamed to match), and the sidecars and the STS are told
   * the control plane's IDs, as the injector tells them.
   */
  readonly namespaces?: {
    readonly home: string;
    readonly services: Partial<Readonly<Record<DemoServiceName, string>>>;
    readonly controlPlane: string;
  };
  /**
   * `none`: the control plane only (dev IdP, policy server, STS, the
   * identities), for a data plane the caller runs itself, such as proxies
   * asking `baton authz` (test/helpers/authz-mesh.ts); `services` then
   * names ports nothing listens on. Default `sidecars`.
   */
  readonly dataPlane?: 'sidecars' | 'none';
}

export async function startMesh(options: MeshOptions = {}): Promise<Mesh> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-demo-'));
  const processes: MeshProcess[] = [];
  let identities: MeshIdentities | undefined;
  const stopAll = async (): Promise<void> => {
    await Promise.all(processes.map((p) => stopProcess(p.child)));
    await identities?.dispatcher.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const plan = await planMesh(dir, options);
    identities = plan.mtls ? await writeMeshIdentities(plan) : undefined;
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const entry = options.entry ?? BATON_BIN;
    const start = (name: string, args: string[], extraEnv: Readonly<Record<string, string>> = {}): MeshProcess => {
      const started = startProcess(
        name,
        [entry, ...args],
        { ...options.env, ...extraEnv },
        options.logDir === undefined ? undefined : join(options.logDir, `${name}.log`),
        options.logsToFileOnly === true,
      );
      processes.push(started);
      return started;
    };
    const configs = meshConfigs(plan, options, identities);
    const probe = identities?.dispatcher;
    const idp = start('idp', ['demo', 'idp', '--port', String(plan.ports.idp)]);
    const policyServer = start('policy-server', [
      'policy-server',
      '--config',
      writeConfig(join(dir, 'policy-server.yaml'), configs.policyServer()),
    ]);
    await Promise.all([
      waitForHttp(`${plan.urls.idp}/jwks`, idp, timeoutMs),
      waitForHttp(`${plan.urls.policy}/readyz`, policyServer, timeoutMs, probe),
    ]);
    const sts = start('sts', ['sts', '--config', writeConfig(join(dir, 'sts.yaml'), configs.sts())]);
    await waitForHttp(`${plan.urls.sts}/readyz`, sts, timeoutMs, probe);

    const dataPlane = options.dataPlane === 'none' ? [] : DEMO_SERVICES;
    for (const name of dataPlane) {
      // The apps call with plain fetch: the sidecar is the proxy their environment names, as the injector's
      // baton.dev/http-proxy and docker-compose set it (docs/clients.md).
      const outbound = `http://127.0.0.1:${plan.services[name].outbound}`;
      if (options.apps?.[name] === undefined)
        start(
          `${name}-app`,
          ['demo', 'app', '--name', name, '--port', String(plan.services[name].app), '--outbound', outbound],
          {
            NODE_USE_ENV_PROXY: '1',
            HTTP_PROXY: outbound,
            http_proxy: outbound,
            NO_PROXY: 'localhost,127.0.0.1,::1',
            no_proxy: 'localhost,127.0.0.1,::1',
          },
        );
      start(`${name}-sidecar`, [
        'sidecar',
        '--config',
        writeConfig(join(dir, `${name}-sidecar.yaml`), configs.sidecar(name)),
      ]);
    }
    const owner = (name: string): MeshProcess => processes.find((p) => p.name === name) as MeshProcess;
    await Promise.all(
      dataPlane.flatMap((name) => [
        waitForHttp(`http://127.0.0.1:${plan.services[name].admin}/readyz`, owner(`${name}-sidecar`), timeoutMs),
        ...(options.apps?.[name] === undefined
          ? [waitForPort(plan.services[name].app, owner(`${name}-app`), timeoutMs)]
          : []),
      ]),
    );
    return meshHandle(plan, processes, identities, stopAll);
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Where everything is: the names each part goes by, its ports and URLs, and the files every part reads. */
interface MeshPlan {
  readonly dir: string;
  readonly mtls: boolean;
  readonly names: Record<DemoServiceName, string>;
  readonly spiffe: Omit<typeof DEMO_SPIFFE, 'namespace'> & { readonly namespace: string };
  /** The control plane's names: in its own namespace, it is not the rule's home. */
  readonly stsName: string;
  readonly policyServerName: string;
  readonly policyFile: string;
  readonly ports: {
    readonly idp: number;
    readonly sts: number;
    readonly policy: number;
    readonly stsAdmin: number;
    readonly policyAdmin: number;
  };
  readonly urls: {
    readonly idp: string;
    readonly sts: string;
    readonly policy: string;
    readonly stsAdmin: string;
    readonly policyAdmin: string;
  };
  readonly services: Record<DemoServiceName, ServicePorts>;
}

/** The mesh's names and ports, the call graph and the policy signing key written into `dir`. */
async function planMesh(dir: string, options: MeshOptions): Promise<MeshPlan> {
  const mtls = (options.transport ?? 'mtls') === 'mtls';
  const policyFile = join(dir, 'callgraph.yaml');
  const spaces = options.namespaces;
  const home = spaces?.home ?? DEMO_SPIFFE.namespace;
  const names = Object.fromEntries(
    DEMO_SERVICES.map((name) => [name, canonicalServiceName(name, spaces?.services[name] ?? home, home)]),
  ) as Record<DemoServiceName, string>;
  if (spaces === undefined) copyFileSync(options.policyFile ?? DEMO_POLICY, policyFile);
  else writeFileSync(policyFile, renameServices(readFileSync(options.policyFile ?? DEMO_POLICY, 'utf8'), names));
  const signing = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(join(dir, 'policy-signing.key.pem'), await exportPKCS8(signing.privateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'policy-signing.pub.pem'), await exportSPKI(signing.publicKey));

  const ports = {
    idp: await freePort(),
    sts: await freePort(),
    policy: await freePort(),
    stsAdmin: await freePort(),
    policyAdmin: await freePort(),
  };
  const services = {} as Record<DemoServiceName, ServicePorts>;
  for (const name of DEMO_SERVICES) {
    const inbound = await freePort();
    services[name] = {
      app: options.apps?.[name] ?? (await freePort()),
      inbound,
      outbound: await freePort(),
      admin: await freePort(),
      entry: mtls && name === 'gateway' ? await freePort() : inbound,
    };
  }
  const scheme = mtls ? 'https' : 'http';
  return {
    dir,
    mtls,
    names,
    spiffe: { ...DEMO_SPIFFE, namespace: home },
    stsName: spaces === undefined ? STS_SERVICE : canonicalServiceName(STS_SERVICE, spaces.controlPlane, home),
    policyServerName:
      spaces === undefined
        ? POLICY_SERVER_SERVICE
        : canonicalServiceName(POLICY_SERVER_SERVICE, spaces.controlPlane, home),
    policyFile,
    ports,
    urls: {
      idp: `http://127.0.0.1:${ports.idp}`,
      sts: `${scheme}://127.0.0.1:${ports.sts}`,
      policy: `${scheme}://127.0.0.1:${ports.policy}`,
      stsAdmin: `http://127.0.0.1:${ports.stsAdmin}`,
      policyAdmin: `http://127.0.0.1:${ports.policyAdmin}`,
    },
    services,
  };
}

/** mtls: development certificates for every process, one folder each, named as the process; the ID its namespace gives it. */
async function writeMeshIdentities(plan: MeshPlan): Promise<MeshIdentities> {
  const map = createServiceMap(plan.spiffe);
  const idDir = join(plan.dir, 'identities');
  const workloads = [
    ...DEMO_SERVICES.map((name) => ({ service: name, spiffeId: map.idOf(plan.names[name]) })),
    { service: STS_SERVICE, spiffeId: map.idOf(plan.stsName) },
    { service: POLICY_SERVER_SERVICE, spiffeId: map.idOf(plan.policyServerName) },
  ];
  await writeDevIdentities({
    dir: idDir,
    trustDomain: DEMO_SPIFFE.trustDomain,
    services: workloads,
    validForMs: 24 * 3_600_000,
    layout: 'csi-driver-spiffe',
    now: new Date(),
  });
  const bundle = readFileSync(join(idDir, 'ca', 'ca.crt'), 'utf8');
  const ca = { certPem: bundle, keyPem: readFileSync(join(idDir, 'ca', 'ca.key'), 'utf8') };
  return { dir: idDir, map, bundle, ca, dispatcher: new Agent({ connect: { ca: bundle } }) };
}

/** Each process's configuration, as a file of it would read. */
function meshConfigs(plan: MeshPlan, options: MeshOptions, ids: MeshIdentities | undefined) {
  const { dir, names, urls, services, mtls } = plan;
  // Each part's transport block: its own certificate files and the mesh's SPIFFE rule.
  const transportOf = (workload: string): Record<string, unknown> =>
    ids === undefined
      ? { transport: { mode: 'plaintext' } }
      : {
          transport: { mode: 'mtls' },
          identity: {
            certFile: join(ids.dir, workload, 'tls.crt'),
            keyFile: join(ids.dir, workload, 'tls.key'),
            bundleFile: join(ids.dir, workload, 'ca.crt'),
          },
          spiffe: plan.spiffe,
        };
  // Outside the home namespace the control plane's IDs are named, as the injector names them (sts.spiffeId, policy.spiffeId).
  const controlPlaneIds = (key: 'sts' | 'policy'): Record<string, string> =>
    ids === undefined || options.namespaces === undefined
      ? {}
      : { spiffeId: ids.map.idOf(key === 'sts' ? plan.stsName : plan.policyServerName) };
  // One key for the whole mesh, so baton.subject pseudonyms in spans join across processes.
  const telemetry = { subjectHashKey: randomBytes(24).toString('base64url') };
  const secrets = Object.fromEntries(
    DEMO_SERVICES.map((name) => [name, randomBytes(24).toString('base64url')]),
  ) as Record<DemoServiceName, string>;
  const policy = { url: urls.policy, publicKey: join(dir, 'policy-signing.pub.pem'), ...controlPlaneIds('policy') };
  return {
    policyServer: () => ({
      policy: plan.policyFile,
      signingKey: join(dir, 'policy-signing.key.pem'),
      port: plan.ports.policy,
      admin: { port: plan.ports.policyAdmin },
      ...transportOf(POLICY_SERVER_SERVICE),
    }),
    sts: () => ({
      issuer: urls.sts,
      port: plan.ports.sts,
      admin: { port: plan.ports.stsAdmin },
      tokenTtlSeconds: 300,
      policy,
      keys: { dir: join(dir, 'sts-keys') },
      // mtls: each sidecar's certificate is its credential (RFC 8705 tls_client_auth), and no secret is shipped.
      clients: DEMO_SERVICES.map((name) =>
        mtls ? { id: names[name], tlsClientAuth: true } : { id: names[name], secret: secrets[name] },
      ),
      // The STS needs each issuer's audience; the gateway sidecar defaults it to its service name.
      externalIssuers: [
        { issuer: urls.idp, jwksUri: `${urls.idp}/jwks`, audience: names.gateway },
        ...(options.externalIssuers ?? []).map((e) => ({
          audience: names.gateway,
          discovery: e.jwksUri === undefined,
          ...e,
        })),
      ],
      ...transportOf(STS_SERVICE),
      telemetry,
    }),
    sidecar: (name: DemoServiceName) => {
      const ports = services[name];
      return {
        service: names[name],
        inbound: {
          port: ports.inbound,
          app: `http://127.0.0.1:${ports.app}`,
          ...(ports.entry === ports.inbound ? {} : { plaintextPort: ports.entry }),
          ...(options.forwardToken?.includes(name) === true ? { forwardToken: true } : {}),
          ...(options.optionalClientCertificate?.includes(name) === true ? { clientCertificate: 'optional' } : {}),
        },
        outbound: { port: ports.outbound },
        admin: { port: ports.admin },
        sts: {
          issuer: urls.sts,
          clientId: names[name],
          ...(mtls ? {} : { clientSecret: secrets[name] }),
          ...controlPlaneIds('sts'),
        },
        policy,
        upstreams: Object.fromEntries(
          DEMO_SERVICES.filter((n) => n !== name).map((n) => [
            names[n],
            `${mtls ? 'https' : 'http'}://127.0.0.1:${services[n].inbound}`,
          ]),
        ),
        ...transportOf(name),
        ...(options.redis === undefined
          ? {}
          : { redis: { url: options.redis.url, ...redisSecretsLayout.sidecar(options.redis.secretsDir, name) } }),
        ...(name === 'gateway'
          ? {
              externalIssuers: [
                { issuer: urls.idp, jwksUri: `${urls.idp}/jwks` },
                ...(options.externalIssuers ?? []).map(({ discovery: _discovery, ...e }) => e),
              ],
            }
          : {}),
        telemetry,
      };
    },
  };
}

/** The running mesh as its callers hold it. */
function meshHandle(
  plan: MeshPlan,
  processes: MeshProcess[],
  identities: MeshIdentities | undefined,
  stop: () => Promise<void>,
): Mesh {
  const { urls, names } = plan;
  return {
    dir: plan.dir,
    idpUrl: urls.idp,
    stsUrl: urls.sts,
    policyUrl: urls.policy,
    stsAdminUrl: urls.stsAdmin,
    policyAdminUrl: urls.policyAdmin,
    services: plan.services,
    processes,
    names,
    transport: plan.mtls ? 'mtls' : 'plaintext',
    identities,
    process(name) {
      const found = processes.find((p) => p.name === name);
      if (found === undefined) throw new Error(`no mesh process named ${name}`);
      return found;
    },
    async userToken({ sub, scope, acr }) {
      const form = new URLSearchParams({ sub, scope, aud: names.gateway, ...(acr === undefined ? {} : { acr }) });
      const response = await request(`${urls.idp}/dev/token`, {
        method: 'POST',
        body: form.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      const body = (await response.body.json()) as { access_token: string };
      return body.access_token;
    },
    stop,
  };
}

/** The call graph with each demo service renamed (service keys, from, origins), for a mesh across namespaces. */
function renameServices(policyText: string, names: Readonly<Record<string, string>>): string {
  const rename = (name: string): string => (Object.hasOwn(names, name) ? (names[name] as string) : name);
  const policy = parse(policyText) as {
    spec: {
      services: Record<string, { accepts?: Array<{ from?: string; origins?: string[] }> } & Record<string, unknown>>;
    };
  };
  policy.spec.services = Object.fromEntries(
    Object.entries(policy.spec.services).map(([service, body]) => [
      rename(service),
      {
        ...body,
        ...(body.accepts === undefined
          ? {}
          : {
              accepts: body.accepts.map((rule) => ({
                ...rule,
                ...(rule.from === undefined ? {} : { from: rename(rule.from) }),
                ...(rule.origins === undefined ? {} : { origins: rule.origins.map(rename) }),
              })),
            }),
      },
    ]),
  );
  return stringify(policy);
}

/** Writes a part's config file (owner-only: it may hold a client secret); returns its path. */
function writeConfig(path: string, config: unknown): string {
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}
