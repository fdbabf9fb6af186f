/**
 * One POST to the token endpoint (RFC 6749 §3.2, RFC 8693 §2.1) over a
 * dedicated keep-alive pool, with the client authenticated and the answer
 * validated. Throws ExchangeRefusedError for an OAuth error answer,
 * StsUnavailableError when there is no answer (transport, timeout, 5xx),
 * StsThrottledError for 429, TokenExpiredError (reason `exchanged`) for a
 * token with no lifetime left, and StsBadAnswerError for anything else.
 */
import { context, propagation } from '@opentelemetry/api';
import { type Dispatcher, Pool, request } from 'undici';
import type { SidecarClientAuthMethod } from '../../core/client-auth-method.ts';
import { BodyTooLargeError, readBoundedText } from '../../core/bounded-text.ts';
import { TokenExpiredError } from '../../token/errors.ts';
import { ExchangeRefusedError, StsBadAnswerError, StsThrottledError, StsUnavailableError } from './errors.ts';

export interface StsClientOptions {
  readonly tokenEndpoint: string;
  readonly clientId: string;
  /** Required for the secret methods; unused with tls_client_auth, where the certificate is the credential. */
  readonly clientSecret?: string | undefined;
  readonly authMethod: SidecarClientAuthMethod;
  readonly dispatcher?: Dispatcher;
  readonly connectTimeoutMs: number;
  /** Time to response headers, and the longest pause in the body. */
  readonly timeoutMs: number;
  readonly maxResponseBytes?: number;
}

export interface TokenResponse {
  readonly accessToken: string;
  readonly expiresIn: number;
  readonly scope: string | undefined;
  readonly issuedTokenType: string | undefined;
}

export interface StsClient {
  /** `dispatcher`: the connection to send on (for tls_client_auth, the one presenting the certificate the token binds to). */
  post(params: Readonly<Record<string, string>>, dispatcher?: Dispatcher): Promise<TokenResponse>;
  close(): Promise<void>;
}

export function createStsClient(options: StsClientOptions): StsClient {
  const endpoint = new URL(options.tokenEndpoint);
  const ownPool =
    options.dispatcher === undefined
      ? new Pool(endpoint.origin, { connect: { timeout: options.connectTimeoutMs }, connections: 32 })
      : undefined;
  const dispatcher = options.dispatcher ?? (ownPool as Dispatcher);
  const method = options.authMethod;
  const maxBytes = options.maxResponseBytes ?? 64 * 1024;
  // RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded.
  const secret = options.clientSecret;
  if (method !== 'tls_client_auth' && secret === undefined)
    throw new TypeError(`expected a client secret for ${method}`);
  const basic =
    'Basic ' + Buffer.from(`${formEncode(options.clientId)}:${formEncode(secret ?? '')}`).toString('base64');

  return {
    async post(params, via) {
      const form = new URLSearchParams(params);
      const headers: Record<string, string> = {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      };
      // W3C trace context: the STS's span joins the caller's trace (a no-op when tracing is off).
      propagation.inject(context.active(), headers);
      if (method === 'client_secret_basic') headers.authorization = basic;
      else if (method === 'client_secret_post') {
        form.set('client_id', options.clientId);
        form.set('client_secret', secret as string);
      } else {
        // RFC 8705 §2: with tls_client_auth the client_id parameter is REQUIRED; the TLS certificate is the credential.
        form.set('client_id', options.clientId);
      }
      let response: Dispatcher.ResponseData;
      try {
        response = await request(endpoint, {
          dispatcher: via ?? dispatcher,
          method: 'POST',
          headers,
          body: form.toString(),
          headersTimeout: options.timeoutMs,
          bodyTimeout: options.timeoutMs,
        });
      } catch (cause) {
        throw new StsUnavailableError(`expected an answer from the token endpoint, got ${errorName(cause)}`, { cause });
      }
      const body = await readJson(response, maxBytes);
      if (response.statusCode === 200) return parseTokenResponse(body);
      // RFC 6749 §5.2: a 400 (or 401 for invalid_client) with an error code is a refusal, not an outage.
      const oauthError = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
      if (
        response.statusCode >= 400 &&
        response.statusCode < 500 &&
        response.statusCode !== 429 &&
        typeof oauthError === 'string' &&
        /^[\x20-\x7e]{1,64}$/.test(oauthError)
      ) {
        throw new ExchangeRefusedError(oauthError, `the token service refused the exchange: ${oauthError}`);
      }
      if (response.statusCode >= 500)
        throw new StsUnavailableError(
          `expected status 200 or an OAuth error from the token endpoint, got ${response.statusCode}`,
        );
      if (response.statusCode === 429)
        throw new StsThrottledError(
          'expected the token endpoint to take the request, it answered 429 (too many requests)',
        );
      throw new StsBadAnswerError(
        `expected status 200 or an OAuth error from the token endpoint, got ${response.statusCode}`,
      );
    },
    async close() {
      await ownPool?.close();
    },
  };
}

async function readJson(response: Dispatcher.ResponseData, maxBytes: number): Promise<unknown> {
  let text: string;
  try {
    text = await readBoundedText(response.body, maxBytes);
  } catch (cause) {
    if (cause instanceof BodyTooLargeError)
      throw new StsBadAnswerError(`expected a token response of at most ${maxBytes} bytes`);
    throw new StsUnavailableError(`reading the token response failed: ${errorName(cause)}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** RFC 8693 §2.2.1 / RFC 6749 §5.1: what a successful response must hold. */
function parseTokenResponse(body: unknown): TokenResponse {
  if (typeof body !== 'object' || body === null) throw new StsBadAnswerError('expected a JSON token response');
  const {
    access_token: accessToken,
    token_type: tokenType,
    expires_in: expiresIn,
    scope,
    issued_token_type: issuedTokenType,
  } = body as Record<string, unknown>;
  if (typeof accessToken !== 'string' || accessToken === '')
    throw new StsBadAnswerError('expected access_token in the token response');
  // RFC 6749 §7.1: token_type is case-insensitive.
  if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer')
    throw new StsBadAnswerError('expected token_type Bearer in the token response');
  // Without a lifetime the cache could not know when to stop using the token.
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn))
    throw new StsBadAnswerError('expected a numeric expires_in in the token response');
  // A well-formed answer whose token is already dead: the subject token ran out, not the STS.
  if (expiresIn <= 0)
    throw new TokenExpiredError(`expected a token with lifetime left, got expires_in ${expiresIn}`, {
      reason: 'exchanged',
    });
  if (scope !== undefined && typeof scope !== 'string') throw new StsBadAnswerError('expected scope to be a string');
  if (issuedTokenType !== undefined && typeof issuedTokenType !== 'string')
    throw new StsBadAnswerError('expected issued_token_type to be a string');
  return { accessToken, expiresIn, scope, issuedTokenType };
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function errorName(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : error instanceof Error ? error.name : 'an error';
}
