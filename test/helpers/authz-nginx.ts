/**
 * The demo's three services with nginx, not baton's sidecar, as their data
 * plane: per service one real Debian nginx (one worker, like one pod's
 * proxy) running the configuration in examples/nginx/, asking that
 * service's `baton authz` about every request over auth_request, in front
 * of the demo app. Over the demo mesh's control plane (dev IdP, policy
 * server, STS, mTLS identities: src/demo/mesh.ts, `dataPlane: 'none'`).
 *
 *   client → gateway nginx (ingress.conf) → gateway app → gateway nginx
 *   outbound (upstream-orders.conf) ═mTLS═▶ orders nginx (service.conf) →
 *   orders app → orders nginx outbound ═mTLS═▶ payments nginx → payments app
 *
 * The example files are used as they are; the only things this helper
 * writes are what the docs tell a user to fill in (the ${BATON_*} values)
 * and, in the top-level file, where this nginx keeps its pid, logs and
 * temporary files. The result looks like the demo mesh to
 * src/demo/scenario.ts, so the demo's own scenarios run through it.
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { DEMO_SERVICES, DEMO_SPIFFE, type Mesh, startMesh } from '../../src/demo/mesh.ts';
import type { MeshProcess } from '../../src/demo/processes.ts';
import type { DemoServiceName } from '../../src/demo/apps.ts';
import { type AuthzOptions, type AuthzProcess, startAuthz } from './authz-mesh.ts';
import { requireProgram } from './native-proxies.ts';
import { freePort, waitFor } from './net.ts';
import { type RunningProcess, startBaton, startProcess } from './process.ts';

export const NGINX_EXAMPLES = fileURLToPath(new URL('../../examples/nginx/', import.meta.url));

export interface NginxInstance {
  readonly service: DemoServiceName;
  /** Where callers reach the service: plaintext at the gateway (the ingress), mTLS elsewhere. */
  readonly inbound: number;
  /** Where the app sends its calls out. */
  readonly outbound: number;
  readonly dir: string;
  /** nginx's stderr and error log. */
  output(): string;
}

export interface NginxAuthzMesh {
  /** The control plane, its data plane swapped for nginx + baton authz: what src/demo/scenario.ts drives. */
  readonly mesh: Mesh;
  /** The services behind nginx (all but `sidecars`). */
  readonly authz: Readonly<Partial<Record<DemoServiceName, AuthzProcess>>>;
  readonly nginx: Readonly<Partial<Record<DemoServiceName, NginxInstance>>>;
  readonly apps: Readonly<Record<DemoServiceName, number>>;
  stop(): Promise<void>;
}

export interface NginxAuthzMeshOptions {
  /** nginx's decision cache on the auth locations (proxy_cache), or every request asks baton. */
  readonly cache: boolean;
  /** For every baton authz. */
  readonly authz?: AuthzOptions;
  /** Apps already listening (a test's own) instead of the demo apps. */
  readonly apps?: Partial<Readonly<Record<DemoServiceName, number>>>;
  /** For the control plane and the demo apps (the bundle, for the benchmark). */
  readonly entry?: string;
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Services that run baton's own sidecar instead of nginx + baton authz: a
   * mesh mixing both modes. Their callers reach the sidecar's inbound port
   * over mTLS, and the sidecar reaches the others' nginx the same way.
   */
  readonly sidecars?: readonly DemoServiceName[];
}

/** Fills `${NAME}` from `values`; a placeholder without a value is an error, as it would be a broken config. */
export function fillTemplate(text: string, values: Readonly<Record<string, string>>, what: string): string {
  return text.replace(/\$\{(BATON_[A-Z_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${what}: no value for \${${name}}`);
    return value;
  });
}

export async function startNginxAuthzMesh(options: NginxAuthzMeshOptions): Promise<NginxAuthzMesh> {
  const binary = requireProgram('nginx');
  const control = await startMesh({
    dataPlane: 'none',
    ...(options.entry === undefined ? {} : { entry: options.entry }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  const started: Array<{ stop(): Promise<unknown> }> = [];
  const dirs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.stop()));
    await control.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ids = control.identities;
    if (ids === undefined) throw new Error('the nginx mesh runs in mtls mode');
    const sidecars = new Set(options.sidecars ?? []);
    const proxied = DEMO_SERVICES.filter((name) => !sidecars.has(name));
    const ports = {} as Record<
      DemoServiceName,
      { app: number; inbound: number; outbound: number; admin: number; entry: number }
    >;
    for (const name of DEMO_SERVICES) {
      const inbound = await freePort();
      // A sidecar at the entry takes outside callers on a plaintext port of its own, as in the demo mesh.
      ports[name] = {
        app: options.apps?.[name] ?? (await freePort()),
        inbound,
        outbound: await freePort(),
        admin: await freePort(),
        entry: name === 'gateway' && sidecars.has(name) ? await freePort() : inbound,
      };
    }

    const authzList = await Promise.all(
      proxied.map((name) =>
        startAuthz(control, name, {
          ...options.authz,
          ...(options.entry === undefined ? {} : { entry: options.entry }),
        }),
      ),
    );
    started.push(...authzList);
    const authz: Partial<Record<DemoServiceName, AuthzProcess>> = Object.fromEntries(
      authzList.map((a) => [a.service, a]),
    );
    const sidecarProcesses: MeshProcess[] = [];
    for (const name of sidecars) {
      const sidecar = await startSidecar(control, name, ports, options);
      started.push({ stop: () => sidecar.stop('SIGTERM', 5_000) });
      sidecarProcesses.push({
        name: `${name}-sidecar`,
        child: sidecar.child,
        get logs() {
          return jsonLines(sidecar.stdout());
        },
        output: () => sidecar.stdout() + sidecar.stderr(),
      });
    }

    const nginx: Partial<Record<DemoServiceName, NginxInstance>> = {};
    for (const name of proxied) {
      const dir = mkdtempSync(join(tmpdir(), `baton-nginx-${name}-`));
      dirs.push(dir);
      // The worker may run as another user (nobody) when the master is root: it must reach its temporary paths and cache.
      chmodSync(dir, 0o755);
      const values: Record<string, string> = {
        BATON_AUTHZ: `127.0.0.1:${(authz[name] as AuthzProcess).http}`,
        BATON_APP: `127.0.0.1:${ports[name].app}`,
        BATON_LISTEN: `127.0.0.1:${ports[name].inbound}`,
        BATON_OUTBOUND_LISTEN: `127.0.0.1:${ports[name].outbound}`,
        BATON_CERT: join(ids.dir, name, 'tls.crt'),
        BATON_KEY: join(ids.dir, name, 'tls.key'),
        BATON_BUNDLE: join(ids.dir, name, 'ca.crt'),
        BATON_CACHE_DIR: join(dir, 'decisions'),
        BATON_DECISION_CACHE: options.cache ? 'baton_decisions' : 'off',
      };
      renderExamples(
        dir,
        name === 'gateway' ? 'ingress' : 'service',
        values,
        DEMO_SERVICES.filter((n) => n !== name).map((target) => ({
          ...values,
          BATON_TARGET: control.names[target],
          BATON_TARGET_ADDRESS: `127.0.0.1:${ports[target].inbound}`,
        })),
      );
      const running = startProcess(binary, examplesCommandLine(dir, { daemon: false }));
      const log = join(dir, 'error.log');
      const instance: NginxInstance = {
        service: name,
        inbound: ports[name].inbound,
        outbound: ports[name].outbound,
        dir,
        output: () => running.stderr() + (existsSync(log) ? readFileSync(log, 'utf8') : ''),
      };
      started.push({ stop: () => running.stop('SIGTERM', 5_000) });
      await Promise.all([
        listening(ports[name].inbound, running, instance),
        listening(ports[name].outbound, running, instance),
      ]);
      nginx[name] = instance;
    }

    const apps: RunningProcess[] = [];
    for (const name of DEMO_SERVICES) {
      if (options.apps?.[name] !== undefined) continue;
      // nginx opens no CONNECT tunnel and the example forwards HTTP/1.1: the apps send to their outbound
      // listener with the service in Host, and orders charges over HTTP (docs/nginx.md).
      const args = [
        'demo',
        'app',
        '--name',
        name,
        '--port',
        String(ports[name].app),
        '--outbound',
        `http://127.0.0.1:${ports[name].outbound}`,
        '--calls',
        'host',
        '--charge',
        'http',
      ];
      const app =
        options.entry === undefined
          ? startBaton(args, options.env)
          : startProcess(process.execPath, [options.entry, ...args], options.env);
      apps.push(app);
      started.push({ stop: () => app.stop('SIGTERM', 5_000) });
    }
    await Promise.all(
      DEMO_SERVICES.filter((name) => options.apps?.[name] === undefined).map((name, i) =>
        waitFor(
          async () =>
            apps[i]?.child.exitCode !== null
              ? Promise.reject(new Error(`${name} app exited: ${apps[i]?.stderr()}`))
              : canConnect(ports[name].app),
          { timeoutMs: 20_000, what: `${name} app` },
        ),
      ),
    );

    const authzProcesses: MeshProcess[] = authzList.map((a) => ({
      name: `${a.service}-authz`,
      child: a.process.child,
      get logs() {
        return a.logs();
      },
      output: () => a.process.stdout() + a.process.stderr(),
    }));
    const processes = [...control.processes, ...authzProcesses, ...sidecarProcesses];
    const services = Object.fromEntries(
      DEMO_SERVICES.map((name) => [
        name,
        {
          app: ports[name].app,
          inbound: ports[name].inbound,
          outbound: ports[name].outbound,
          entry: ports[name].entry,
          admin: authz[name]?.admin ?? ports[name].admin,
        },
      ]),
    ) as Mesh['services'];
    const mesh: Mesh = {
      ...control,
      services,
      processes,
      process(name) {
        const found = processes.find((p) => p.name === name);
        if (found === undefined) throw new Error(`no process named ${name}`);
        return found;
      },
      stop,
    };
    return {
      mesh,
      authz,
      nginx,
      apps: Object.fromEntries(DEMO_SERVICES.map((name) => [name, ports[name].app])) as Record<DemoServiceName, number>,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** nginx's arguments for an instance `renderExamples` wrote into `dir`: its files, error log and pid file all there. */
export function examplesCommandLine(dir: string, options: { readonly daemon: boolean }): string[] {
  return [
    '-p',
    dir,
    '-c',
    join(dir, 'nginx.conf'),
    '-e',
    join(dir, 'error.log'),
    '-g',
    `daemon ${options.daemon ? 'on' : 'off'}; pid ${join(dir, 'nginx.pid')};`,
  ];
}

/**
 * examples/nginx/ as nginx reads it from `dir`: the files copied, the
 * templates filled (one upstream file per service called), and in the
 * top-level file the temporary paths of this instance.
 */
export function renderExamples(
  dir: string,
  kind: 'ingress' | 'service' | 'none',
  values: Readonly<Record<string, string>>,
  upstreams: ReadonlyArray<Readonly<Record<string, string>>>,
  options: { readonly plaintextUpstreams?: boolean } = {},
): void {
  mkdirSync(join(dir, 'baton'));
  mkdirSync(join(dir, 'conf.d'));
  for (const file of readdirSync(join(NGINX_EXAMPLES, 'baton'))) {
    const source = join(NGINX_EXAMPLES, 'baton', file);
    if (file.endsWith('.template'))
      writeFileSync(
        join(dir, 'baton', file.slice(0, -'.template'.length)),
        fillTemplate(readFileSync(source, 'utf8'), values, file),
      );
    else cpSync(source, join(dir, 'baton', file));
  }
  if (kind !== 'none')
    writeFileSync(
      join(dir, 'conf.d', `${kind}.conf`),
      fillTemplate(
        readFileSync(join(NGINX_EXAMPLES, 'conf.d', `${kind}.conf.template`), 'utf8'),
        values,
        `${kind}.conf.template`,
      ),
    );
  // The benchmark's plaintext pair: the same upstream file, sending on in plain HTTP (no proxy_ssl_* lines).
  const template = readFileSync(join(NGINX_EXAMPLES, 'conf.d', 'upstream.conf.template'), 'utf8');
  const upstream =
    options.plaintextUpstreams === true
      ? template.replace('proxy_pass https://', 'proxy_pass http://').replace(/^\s*proxy_ssl_\w+ [^\n]*\n/gm, '')
      : template;
  for (const target of upstreams)
    writeFileSync(
      join(dir, 'conf.d', `upstream-${target.BATON_TARGET}.conf`),
      fillTemplate(upstream, target, 'upstream.conf.template'),
    );
  const temporary = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `  ${kind}_temp_path ${join(dir, kind)};`)
    .join('\n');
  writeFileSync(
    join(dir, 'nginx.conf'),
    readFileSync(join(NGINX_EXAMPLES, 'nginx.conf'), 'utf8').replace(/^http \{$/m, `http {\n${temporary}`),
  );
}

async function listening(port: number, running: RunningProcess, instance: NginxInstance): Promise<void> {
  await waitFor(
    async () => {
      if (running.child.exitCode !== null)
        throw new Error(
          `nginx for ${instance.service} exited (${running.child.exitCode}): ${instance.output().slice(-3000)}`,
        );
      return canConnect(port);
    },
    { timeoutMs: 10_000, what: `nginx for ${instance.service} listening on ${port}` },
  );
}

/** baton's sidecar for one service of the mixed mesh, configured as src/demo/mesh.ts configures it. */
async function startSidecar(
  control: Mesh,
  name: DemoServiceName,
  ports: Readonly<
    Record<DemoServiceName, { app: number; inbound: number; outbound: number; admin: number; entry: number }>
  >,
  options: NginxAuthzMeshOptions,
): Promise<RunningProcess> {
  const ids = control.identities as NonNullable<Mesh['identities']>;
  const file = join(control.dir, `${name}-sidecar.yaml`);
  writeFileSync(
    file,
    stringify({
      service: control.names[name],
      inbound: {
        port: ports[name].inbound,
        app: `http://127.0.0.1:${ports[name].app}`,
        ...(ports[name].entry === ports[name].inbound ? {} : { plaintextPort: ports[name].entry }),
      },
      outbound: { port: ports[name].outbound },
      admin: { port: ports[name].admin },
      sts: { issuer: control.stsUrl, clientId: control.names[name] },
      policy: { url: control.policyUrl, publicKey: join(control.dir, 'policy-signing.pub.pem') },
      upstreams: Object.fromEntries(
        DEMO_SERVICES.filter((n) => n !== name).map((n) => [control.names[n], `https://127.0.0.1:${ports[n].inbound}`]),
      ),
      transport: { mode: 'mtls' },
      identity: {
        certFile: join(ids.dir, name, 'tls.crt'),
        keyFile: join(ids.dir, name, 'tls.key'),
        bundleFile: join(ids.dir, name, 'ca.crt'),
      },
      spiffe: DEMO_SPIFFE,
      ...(name === 'gateway'
        ? { externalIssuers: [{ issuer: control.idpUrl, jwksUri: `${control.idpUrl}/jwks` }] }
        : {}),
    }),
    { mode: 0o600 },
  );
  const args = ['sidecar', '--config', file];
  const running =
    options.entry === undefined
      ? startBaton(args, options.env)
      : startProcess(process.execPath, [options.entry, ...args], options.env);
  await waitFor(
    async () => {
      if (running.child.exitCode !== null) throw new Error(`${name} sidecar exited: ${running.stderr().slice(-2000)}`);
      const response = await request(`http://127.0.0.1:${ports[name].admin}/readyz`, {
        headersTimeout: 1_000,
        bodyTimeout: 1_000,
      });
      await response.body.dump();
      return response.statusCode === 200;
    },
    { timeoutMs: 30_000, intervalMs: 100, what: `${name} sidecar ready` },
  );
  return running;
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return out;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
