/**
 * `baton authz` processes over the demo mesh's control plane (src/demo/mesh.ts
 * with `dataPlane: 'none'`: dev IdP, policy server, STS, identities), each
 * configured as docs/authz.md says, for one demo service. The nginx mesh
 * (./authz-nginx.ts) and the gRPC contract tests start them here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import { DEMO_SPIFFE, type Mesh } from '../../src/demo/mesh.ts';
import type { DemoServiceName } from '../../src/demo/apps.ts';
import { freePort, waitFor } from './net.ts';
import { type RunningProcess, startBaton, startProcess } from './process.ts';

export interface AuthzProcess {
  readonly service: DemoServiceName;
  readonly grpc: number;
  readonly http: number;
  readonly admin: number;
  readonly process: RunningProcess;
  readonly configFile: string;
  /** Its JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface AuthzOptions {
  /** Merged over the generated config. */
  readonly config?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string>>;
  /** A script to run instead of the CLI from the sources (the bundle, for the benchmark). */
  readonly entry?: string;
  readonly readyTimeoutMs?: number;
}

/** The config docs/authz.md shows for `service` in this mesh. */
export function authzConfig(
  mesh: Mesh,
  service: DemoServiceName,
  ports: { grpc: number; http: number; admin: number },
  extra: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const ids = mesh.identities;
  const config: Record<string, unknown> = {
    service: mesh.names[service],
    grpc: { port: ports.grpc },
    http: { port: ports.http },
    admin: { port: ports.admin },
    // mtls: the certificate is the credential. plaintext: the secret the demo mesh gave this client, from the STS's own config.
    sts: {
      issuer: mesh.stsUrl,
      clientId: mesh.names[service],
      ...(ids === undefined ? { clientSecret: clientSecretOf(mesh, mesh.names[service]) } : {}),
    },
    policy: { url: mesh.policyUrl, publicKey: join(mesh.dir, 'policy-signing.pub.pem') },
    ...(service === 'gateway' ? { externalIssuers: [{ issuer: mesh.idpUrl, jwksUri: `${mesh.idpUrl}/jwks` }] } : {}),
    ...(ids === undefined
      ? { transport: { mode: 'plaintext' } }
      : {
          transport: { mode: 'mtls' },
          identity: {
            certFile: join(ids.dir, service, 'tls.crt'),
            keyFile: join(ids.dir, service, 'tls.key'),
            bundleFile: join(ids.dir, service, 'ca.crt'),
          },
          spiffe: DEMO_SPIFFE,
        }),
  };
  // One level deep: `{ http: { cacheMaxAgeSeconds: 60 } }` keeps the http port.
  for (const [key, value] of Object.entries(extra)) {
    const base = config[key];
    config[key] = isObject(base) && isObject(value) ? { ...base, ...value } : value;
  }
  return config;
}

function clientSecretOf(mesh: Mesh, clientId: string): string {
  const sts = parse(readFileSync(join(mesh.dir, 'sts.yaml'), 'utf8')) as {
    clients: Array<{ id: string; secret?: string }>;
  };
  const secret = sts.clients.find((c) => c.id === clientId)?.secret;
  if (secret === undefined) throw new Error(`the demo mesh's STS has no secret for ${clientId}`);
  return secret;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export async function startAuthz(
  mesh: Mesh,
  service: DemoServiceName,
  options: AuthzOptions = {},
): Promise<AuthzProcess> {
  const ports = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
  const configFile = join(mesh.dir, `${service}-authz.yaml`);
  writeFileSync(configFile, stringify(authzConfig(mesh, service, ports, options.config)), { mode: 0o600 });
  const running =
    options.entry === undefined
      ? startBaton(['authz', '--config', configFile], options.env)
      : startProcess(process.execPath, [options.entry, 'authz', '--config', configFile], options.env);
  const stop = async (): Promise<void> => {
    await running.stop('SIGTERM', 5_000);
  };
  try {
    await waitFor(
      async () => {
        if (running.child.exitCode !== null)
          throw new Error(
            `baton authz ${service} exited (${running.child.exitCode}): ${running.stderr().slice(-2000)}${running.stdout().slice(-2000)}`,
          );
        const response = await request(`http://127.0.0.1:${ports.admin}/readyz`, {
          headersTimeout: 1_000,
          bodyTimeout: 1_000,
        });
        await response.body.dump();
        return response.statusCode === 200;
      },
      { timeoutMs: options.readyTimeoutMs ?? 30_000, intervalMs: 100, what: `baton authz ${service} ready` },
    );
  } catch (error) {
    await stop();
    throw new Error(
      `${error instanceof Error ? error.message : String(error)}\n${running.stdout().slice(-2000)}\n${running.stderr().slice(-2000)}`,
      { cause: error },
    );
  }
  return {
    service,
    ...ports,
    process: running,
    configFile,
    logs: () => jsonLines(running.stdout()),
    stop,
  };
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
