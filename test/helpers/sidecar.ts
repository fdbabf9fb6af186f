/**
 * In-process sidecars with stand-in collaborators: a tiny STS stand-in that
 * mints opaque tokens into a shared registry (its "signature"), a verifier
 * that reads the registry, the real sealed context handles, and real
 * loopback apps.
 * Unit-level only: the e2e tests run the real STS and policy server.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { loadConfig } from '../../src/config/load.ts';
import type { CompiledPolicy } from '../../src/policy/language/decision.ts';
import type { Collaborators } from '../../src/sidecar/collaborators.ts';
import { createContextHandles } from '../../src/sidecar/context-handles.ts';
import { type SidecarConfig, SidecarConfigSchema } from '../../src/sidecar/config.ts';
import type { IssuedToken, TokenExchanger } from '../../src/sidecar/exchange/exchanger.ts';
import { createSidecar, type Sidecar, type SidecarPorts } from '../../src/sidecar/sidecar.ts';
import type { VerifiedToken } from '../../src/token/verified-token.ts';
import { handling, type TestHandler } from './http-server.ts';
import { captureLogs, type LogCapture } from './logs.ts';
import { listenOnLoopback } from './net.ts';
import { callGraph, compileTestPolicy } from './policy.ts';
import { ExchangeRefusedError } from '../../src/sidecar/exchange/errors.ts';
import { TokenBadSignatureError } from '../../src/token/errors.ts';

export { compileTestPolicy as compile } from './policy.ts';
export { captureLogs, type LogCapture } from './logs.ts';

export const SHOP = callGraph(
  `
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, paths: ["/orders", "/orders/**", "/upload", "/download", "/slow", "/redirect"] }
    - { name: reconcile, from: billing, methods: [GET], paths: ["/orders/**"], user: none }
payments:
  accepts:
    - { name: charge, from: orders, origins: [gateway], methods: [POST], paths: ["/charges"], scopes: "pay", acr: [mfa] }
    - { name: refunds, from: orders, methods: [POST], paths: ["/refunds"], mode: shadow, scopes: "refund" }
billing: {}
`,
  { name: 'shop', maxDepth: 4 },
);

/** The STS stand-in: tokens are random strings, their claims live here. */
export class FakeSts {
  readonly tokens = new Map<string, VerifiedToken & { audience: string }>();
  exchanges = 0;
  serviceTokens = 0;
  available = true;
  delayMs = 0;

  /** A user token from an external IdP, for an entrypoint. */
  userToken(
    audience: string,
    options: { sub?: string; issuer?: string; scopes?: string[]; acr?: string } = {},
  ): string {
    return this.mint({
      kind: 'external',
      subject: options.sub ?? 'alice',
      subjectIssuer: options.issuer ?? 'https://idp.test',
      user: true,
      chain: [],
      scopes: new Set(options.scopes ?? []),
      txn: undefined,
      acr: options.acr,
      expiresAt: 0,
      audience,
    });
  }

  /** A mesh token as the real STS would mint it for `chain` calling `audience`. */
  meshToken(
    audience: string,
    chain: string[],
    options: { sub?: string; scopes?: string[]; acr?: string; user?: boolean } = {},
  ): string {
    return this.mint({
      kind: 'mesh',
      subject: options.sub ?? 'alice',
      subjectIssuer: 'https://idp.test',
      user: options.user ?? true,
      chain,
      scopes: new Set(options.scopes ?? []),
      txn: 'txn-1',
      acr: options.acr,
      expiresAt: 0,
      audience,
    });
  }

  private mint(
    claims: Omit<VerifiedToken, 'claims' | 'issuer' | 'authTime' | 'clientId' | 'jti' | 'confirmation'> & {
      audience: string;
    },
  ): string {
    const token = `tok.${randomBytes(12).toString('base64url')}.sig`;
    const issuer = claims.kind === 'mesh' ? 'https://sts.test' : claims.subjectIssuer;
    this.tokens.set(token, {
      claims: {},
      issuer,
      authTime: undefined,
      clientId: undefined,
      jti: undefined,
      confirmation: undefined,
      ...claims,
      expiresAt: Math.floor(Date.now() / 1000) + 300,
    });
    return token;
  }

  exchangerFor(client: string): TokenExchanger {
    const cache = new Map<string, Promise<IssuedToken>>();
    const issue = async (
      subject: (VerifiedToken & { audience: string }) | undefined,
      audience: string,
    ): Promise<IssuedToken> => {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      const accessToken =
        subject === undefined
          ? this.meshToken(audience, [client], { sub: client, user: false })
          : this.meshToken(audience, [...subject.chain, client], {
              sub: subject.subject,
              scopes: [...subject.scopes],
              ...(subject.acr === undefined ? {} : { acr: subject.acr }),
            });
      return {
        accessToken,
        expiresAt: Math.floor(Date.now() / 1000) + 300,
        scope: '',
        issuedTokenType: 'urn:ietf:params:oauth:token-type:access_token',
        cached: 'miss',
      };
    };
    return {
      exchange: async ({ subjectToken, audience }) => {
        const key = `${subjectToken}\n${audience}`;
        let pending = cache.get(key);
        if (pending === undefined) {
          if (!this.available) throw new ExchangeRefusedError('invalid_target', 'sts down');
          this.exchanges++;
          pending = issue(this.tokens.get(subjectToken), audience);
          cache.set(key, pending);
        }
        return { ...(await pending), cached: 'hit' };
      },
      serviceToken: async ({ audience }) => {
        this.serviceTokens++;
        return await issue(undefined, audience);
      },
    };
  }
}

export class MutablePolicy {
  policy: CompiledPolicy | undefined;
  versionNumber = 1;
  private listeners: Array<(p: unknown, v: number) => void> = [];
  constructor(policy: CompiledPolicy | undefined) {
    this.policy = policy;
  }
  current(): CompiledPolicy | undefined {
    return this.policy;
  }
  version(): number | undefined {
    return this.policy === undefined ? undefined : this.versionNumber;
  }
  snapshot(): { policy: CompiledPolicy; version: number } | undefined {
    return this.policy === undefined ? undefined : { policy: this.policy, version: this.versionNumber };
  }
  onUpdate(listener: (p: unknown, v: number) => void): () => void {
    this.listeners.push(listener);
    return () => undefined;
  }
  swap(policy: CompiledPolicy): void {
    this.policy = policy;
    this.versionNumber++;
    for (const l of this.listeners) l(policy, this.versionNumber);
  }
}

export interface TestSidecar {
  readonly ports: SidecarPorts;
  readonly sidecar: Sidecar;
  readonly config: SidecarConfig;
  readonly logs: LogCapture;
  readonly policy: MutablePolicy;
  verifyCalls: number;
  exchangerAvailable: boolean;
  /** Runs inside every verification, before it answers: a slow verifier, or one that reloads the policy meanwhile. */
  duringVerify: (() => Promise<void>) | undefined;
  url(direction: 'inbound' | 'outbound' | 'admin', path?: string): string;
  close(): Promise<void>;
}

export async function startTestSidecar(
  sts: FakeSts,
  settings: {
    service: string;
    app: string;
    upstreams?: Record<string, string>;
    policy?: CompiledPolicy | undefined;
    config?: Record<string, unknown>;
  },
): Promise<TestSidecar> {
  const config = loadConfig(SidecarConfigSchema, {
    overrides: {
      service: settings.service,
      'inbound.port': 0,
      'outbound.port': 0,
      'admin.port': 0,
      'inbound.app': settings.app,
      'sts.issuer': 'http://127.0.0.1:1',
      'sts.clientId': settings.service,
      'sts.clientSecret': 'test-secret',
      'policy.file': 'unused.yaml',
      upstreams: settings.upstreams ?? {},
      // mTLS is not the subject here: the data plane's steps are (test/e2e/mtls*.test.ts cover mTLS).
      'transport.mode': 'plaintext',
      ...settings.config,
    },
  });
  const logs = captureLogs(settings.service);
  const policy = new MutablePolicy('policy' in settings ? settings.policy : compileTestPolicy(SHOP));
  const exchanger = sts.exchangerFor(settings.service);
  const state: { verifyCalls: number; exchangerAvailable: boolean; duringVerify: (() => Promise<void>) | undefined } = {
    verifyCalls: 0,
    exchangerAvailable: true,
    duringVerify: undefined,
  };
  const collaborators: Collaborators = {
    policy,
    verifier: {
      async verify(token, expected) {
        state.verifyCalls++;
        if (state.duringVerify !== undefined) await state.duringVerify();
        const claims = sts.tokens.get(token);
        if (claims === undefined || claims.audience !== expected.audience)
          throw new TokenBadSignatureError('expected a token signed by a trusted issuer for this audience');
        return claims;
      },
    },
    verifiedCache: { get: () => undefined, set: () => undefined, size: 0 },
    handles: createContextHandles({ maxTokenBytes: config.limits.maxTokenBytes }),
    exchanger: () => (state.exchangerAvailable ? exchanger : undefined),
    waitingFor: () => (policy.current() === undefined ? ['policy'] : []),
    close: async () => undefined,
  };
  const sidecar = createSidecar(config, { logger: logs.logger, collaborators });
  const ports = await sidecar.start();
  const result: TestSidecar = {
    ports,
    sidecar,
    config,
    logs,
    policy,
    get verifyCalls() {
      return state.verifyCalls;
    },
    set verifyCalls(n: number) {
      state.verifyCalls = n;
    },
    get exchangerAvailable() {
      return state.exchangerAvailable;
    },
    set exchangerAvailable(v: boolean) {
      state.exchangerAvailable = v;
    },
    get duringVerify() {
      return state.duringVerify;
    },
    set duringVerify(hook: (() => Promise<void>) | undefined) {
      state.duringVerify = hook;
    },
    url: (direction, path = '/') => `http://127.0.0.1:${ports[direction]}${path}`,
    close: () => sidecar.close(1_000),
  };
  return result;
}

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: string[];
}

export interface TestApp {
  readonly url: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

/** A loopback app; the default handler answers 200 with what it saw. */
export async function startApp(handler?: TestHandler): Promise<TestApp> {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    if (handler !== undefined) return handling(handler)(req, res);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true }));
    });
  });
  await listenOnLoopback(server);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
