import { createServer, type Server } from 'node:http';
import type { JWK } from 'jose';
import { listenOnLoopback } from './net.ts';

export interface JwksServer {
  readonly url: string;
  /** GET /jwks requests answered so far. */
  readonly hits: () => number;
  setKeys(keys: JWK[]): void;
  /** 'up' answers, 'down' answers 503, 'slow' never answers, 'garbage' sends non-JSON. */
  setMode(mode: 'up' | 'down' | 'slow' | 'garbage' | 'huge'): void;
  close(): Promise<void>;
}

/** A JWKS endpoint on loopback that counts what it serves, plus RFC 8414 metadata. */
export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  let current = keys;
  let mode: 'up' | 'down' | 'slow' | 'garbage' | 'huge' = 'up';
  let hits = 0;
  let base = '';
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/oauth-authorization-server') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks`, token_endpoint: `${base}/token` }));
      return;
    }
    if (req.url !== '/jwks') {
      res.writeHead(404).end();
      return;
    }
    hits++;
    if (mode === 'slow') return;
    if (mode === 'down') {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (mode === 'garbage') res.end('<html>');
    else if (mode === 'huge') res.end(JSON.stringify({ keys: current, pad: 'x'.repeat(2 * 1024 * 1024) }));
    else res.end(JSON.stringify({ keys: current }));
  });
  await listenOnLoopback(server);
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  return {
    url: base,
    hits: () => hits,
    setKeys: (next) => void (current = next),
    setMode: (next) => void (mode = next),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
