import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { Value } from '@sinclair/typebox/value';
import { type ExchangeConfig, ExchangeConfigSchema } from '../../src/sidecar/config.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { listenOnLoopback } from './net.ts';

/** Exchange settings for a test: what the sidecar's config loads (the schema's defaults), with the test's changes. */
export function exchangeConfig(
  changes: Omit<Partial<ExchangeConfig>, 'breaker'> & { readonly breaker?: Partial<ExchangeConfig['breaker']> } = {},
): ExchangeConfig {
  return Value.Default(ExchangeConfigSchema, structuredClone(changes)) as ExchangeConfig;
}

export type StsMode = 'ok' | 'refuse' | 'down' | 'hang' | 'bad-type' | 'throttle';

export interface StsStandIn {
  tokenEndpoint: string;
  /** POST /token requests received. */
  calls(): number;
  readonly requests: Array<{ form: URLSearchParams; headers: IncomingHttpHeaders }>;
  mode: StsMode;
  expiresIn: number;
  /** Delay before answering, in ms. */
  delayMs: number;
  close(): Promise<void>;
}

/** A minimal RFC 8693 token endpoint that counts its calls and issues `at-<n>` tokens. */
export async function startStsStandIn(): Promise<StsStandIn> {
  let count = 0;
  const state: StsStandIn = {
    tokenEndpoint: '',
    calls: () => count,
    requests: [],
    mode: 'ok',
    expiresIn: 300,
    delayMs: 0,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      count++;
      const form = new URLSearchParams(body);
      state.requests.push({ form, headers: req.headers });
      const n = count;
      const answer = (): void => {
        if (state.mode === 'hang') return;
        if (state.mode === 'down') {
          res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
          return;
        }
        res.setHeader('content-type', 'application/json');
        res.setHeader('cache-control', 'no-store');
        if (state.mode === 'throttle') {
          res.writeHead(429, { 'retry-after': '1' }).end(JSON.stringify({ error: 'temporarily_unavailable' }));
          return;
        }
        if (state.mode === 'refuse') {
          res.writeHead(400).end(JSON.stringify({ error: 'invalid_target', error_description: 'edge not allowed' }));
          return;
        }
        res.writeHead(200).end(
          JSON.stringify({
            access_token: `at-${n}`,
            issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
            token_type: state.mode === 'bad-type' ? 'DPoP' : 'bearer',
            expires_in: state.expiresIn,
            scope: form.get('scope') ?? 'orders:read',
          }),
        );
      };
      if (state.delayMs > 0) setTimeout(answer, state.delayMs);
      else answer();
    });
  });
  await listenOnLoopback(server);
  const address = server.address();
  state.tokenEndpoint = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/token`;
  state.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** A logger whose every line is kept, to assert that no token ever reaches a log. */
export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: createLogger({ name: 'test', level: 'debug', destination }), lines };
}
