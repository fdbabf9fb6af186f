/**
 * The baton side of the hop harness, as real processes: a `baton sts`, one
 * sidecar A (`gateway`, an entrypoint; the client's way in is its outbound
 * port) and one sidecar B per origin (its inbound port forwards to that
 * origin), all in plaintext mode with a local policy file, and a small
 * external identity provider whose tokens A accepts and exchanges.
 *
 *   client ─▶ A outbound (Host: <service>) ─▶ B(<service>) inbound ─▶ origin
 *
 * Users hold external tokens addressed to the gateway, forwarded by the
 * "app" (the test's client) as `Authorization: Bearer`, which A exchanges
 * at the STS (RFC 8693). For the inbound-only leg the harness exchanges the
 * same token itself, as the gateway, for a mesh token addressed to B.
 */
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { closeServer, listen } from '../../helpers/http-server.ts';
import { freePort, waitFor } from '../../helpers/net.ts';
import { callGraph } from '../../helpers/policy.ts';
import { type RunningProcess, startBaton } from '../../helpers/process.ts';

export const USERS = ['alice', 'bob'] as const;
export type User = (typeof USERS)[number];

export interface HopMesh {
  /** Sidecar A's outbound port: the client's way in. */
  readonly outboundPort: number;
  /** Each B's inbound port, by service. */
  readonly inboundPorts: Readonly<Record<string, number>>;
  /** An external IdP token for the gateway (what A takes in and exchanges). */
  userToken(user: User): string;
  /** A mesh token for `service` (gateway → service), from a real exchange at the STS; re-exchanged when half its life is gone. */
  meshToken(user: User, service: string): Promise<string>;
  /** Every token handed out so far, to keep them out of any message. */
  secrets(): readonly string[];
  /** Log output of every baton process (for a failure report; tokens never appear in it). */
  output(): string;
  stop(): Promise<void>;
}

const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

function compactEs256(key: KeyObject, header: object, claims: object): string {
  const encode = (part: object): string => Buffer.from(JSON.stringify(part)).toString('base64url');
  const input = `${encode(header)}.${encode(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** `apps`: the origin each B forwards to, by service name (a DNS-1123 label the policy names). */
export async function startHopMesh(apps: Readonly<Record<string, number>>): Promise<HopMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-hop-'));
  const servers: Server[] = [];
  const processes: RunningProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 5_000)));
    await Promise.all(servers.map(closeServer));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const services = Object.keys(apps);
    const idpKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwks = {
      keys: [{ ...idpKey.publicKey.export({ format: 'jwk' }), kid: 'hop-idp', alg: 'ES256', use: 'sig' }],
    };
    const idp = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
    });
    // The gateway's own app is never called: the client speaks to A's outbound port as the gateway app would.
    const gatewayApp = await listen();
    servers.push(idp.server, gatewayApp.server);

    const policyFile = join(dir, 'callgraph.yaml');
    writeFileSync(
      policyFile,
      callGraph(
        [
          'gateway: { entrypoint: true }',
          ...services.map((s) => `${s}: { accepts: [ { name: from-gateway, from: gateway, scopes: "shop" } ] }`),
        ].join('\n'),
        { name: 'hop' },
      ),
    );
    const clients = ['gateway', ...services];
    const secrets = Object.fromEntries(clients.map((c) => [c, `secret-${c}-${randomUUID()}`]));
    const stsPort = await freePort();
    const stsUrl = `http://127.0.0.1:${stsPort}`;
    const external = { issuer: idp.url, jwksUri: `${idp.url}/jwks`, audience: 'gateway' };
    writeFileSync(
      join(dir, 'sts.yaml'),
      stringify({
        issuer: stsUrl,
        port: stsPort,
        policy: { file: policyFile },
        keys: { dir: join(dir, 'sts-keys') },
        transport: { mode: 'plaintext' },
        clients: clients.map((id) => ({ id, secret: secrets[id] })),
        externalIssuers: [external],
      }),
    );
    const sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
    processes.push(sts);
    await sts.waitForOutput(/"msg":"sts listening"/, 20_000);

    const ports = Object.fromEntries(
      await Promise.all(
        clients.map(
          async (c) => [c, { inbound: await freePort(), outbound: await freePort(), admin: await freePort() }] as const,
        ),
      ),
    );
    const sidecars = clients.map((name) => {
      const file = join(dir, `${name}.yaml`);
      const port = ports[name] as { inbound: number; outbound: number; admin: number };
      writeFileSync(
        file,
        stringify({
          service: name,
          inbound: {
            port: port.inbound,
            app: name === 'gateway' ? gatewayApp.url : `http://127.0.0.1:${apps[name]}`,
            timeoutMs: 3_000,
          },
          outbound: { port: port.outbound, timeoutMs: 3_000 },
          admin: { port: port.admin },
          sts: { issuer: stsUrl, clientId: name, clientSecret: secrets[name] },
          transport: { mode: 'plaintext' },
          policy: { file: policyFile },
          upstreams: Object.fromEntries(
            services.map((s) => [s, `http://127.0.0.1:${(ports[s] as { inbound: number }).inbound}`]),
          ),
          ...(name === 'gateway' ? { externalIssuers: [external] } : {}),
        }),
      );
      const sidecar = startBaton(['sidecar', '--config', file]);
      processes.push(sidecar);
      return { name, sidecar, admin: port.admin };
    });
    await Promise.all(
      sidecars.map(({ name, sidecar, admin }) =>
        waitFor(
          async () => {
            if (sidecar.child.exitCode !== null)
              throw new Error(`${name} sidecar exited: ${sidecar.stderr().slice(-2000)}`);
            const r = await request(`http://127.0.0.1:${admin}/readyz`);
            await r.body.dump();
            return r.statusCode === 200;
          },
          { timeoutMs: 30_000, what: `${name} sidecar ready` },
        ),
      ),
    );

    const handedOut = new Set<string>();
    const userTokens = new Map<User, string>();
    const now = (): number => Math.floor(Date.now() / 1000);
    const userToken = (user: User): string => {
      let token = userTokens.get(user);
      if (token === undefined) {
        token = compactEs256(
          idpKey.privateKey,
          { alg: 'ES256', typ: 'at+jwt', kid: 'hop-idp' },
          {
            iss: idp.url,
            sub: user,
            aud: 'gateway',
            scope: 'shop',
            client_id: 'web',
            jti: randomUUID(),
            iat: now(),
            exp: now() + 3_600,
          },
        );
        userTokens.set(user, token);
        handedOut.add(token);
      }
      return token;
    };
    const meshTokens = new Map<string, { token: string; renewAt: number }>();
    return {
      outboundPort: (ports.gateway as { outbound: number }).outbound,
      inboundPorts: Object.fromEntries(services.map((s) => [s, (ports[s] as { inbound: number }).inbound])),
      userToken,
      async meshToken(user, service) {
        const key = `${user} ${service}`;
        const held = meshTokens.get(key);
        if (held !== undefined && Date.now() < held.renewAt) return held.token;
        const r = await request(`${stsUrl}/token`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`gateway:${secrets.gateway}`).toString('base64')}`,
          },
          body: new URLSearchParams({
            grant_type: TOKEN_EXCHANGE,
            subject_token: userToken(user),
            subject_token_type: ACCESS_TOKEN,
            audience: service,
          }).toString(),
        });
        const answer = (await r.body.json()) as { access_token?: unknown; expires_in?: unknown; error?: unknown };
        if (r.statusCode !== 200 || typeof answer.access_token !== 'string')
          throw new Error(`the STS refused the exchange for ${service}: ${r.statusCode} ${String(answer.error)}`);
        handedOut.add(answer.access_token);
        meshTokens.set(key, {
          token: answer.access_token,
          renewAt: Date.now() + (Number(answer.expires_in) * 1000) / 2,
        });
        return answer.access_token;
      },
      secrets: () => [...handedOut],
      output: () => processes.map((p) => p.stdout() + p.stderr()).join('\n'),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
