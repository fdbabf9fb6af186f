/**
 * On whose behalf an outbound call is made, and the token it travels with:
 * the steps the sidecar's outbound port and `baton authz`'s outbound check
 * (src/authz/) share, written once.
 *
 * - the subject: the `baton-context` handle the app was given (opened to
 *   the subject token it seals), else a bearer token the app forwards
 *   (one addressed to this service: what the app was given), else nobody:
 *   the call is made with the service's own identity;
 * - its verified claims: from the verified-token cache, verified again on a
 *   miss, so a handle never outlives its token's verification;
 * - the token for the target: exchanged (RFC 8693) for a subject, client
 *   credentials otherwise, single-flight and cached by the exchanger.
 */
import type { RequestHead } from '../dataplane/stream.ts';
import { TokenType } from '../core/token-types.ts';
import { recordExchangeCache } from '../telemetry/exchange-span.ts';
import { tokenDigest } from '../token/verified-cache.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { SidecarContext } from './collaborators.ts';
import { StsUnavailableError } from './exchange/errors.ts';
import type { CertificateBinding, IssuedToken, TokenExchanger } from './exchange/exchanger.ts';
import { UnauthenticatedError } from './errors.ts';
import { IdentityHeader } from './headers.ts';
import { bearerToken } from './request.ts';

export interface Subject {
  readonly subjectToken: string;
  readonly verified: VerifiedToken;
  /** The inbound request whose handle the app sent, if it sent one. */
  readonly request?: string;
}

/** The verified claims of a token addressed to this service: cached, else verified now and cached until exp. */
export async function verifiedFor(
  ctx: Pick<SidecarContext, 'service' | 'verifier' | 'verifiedCache'>,
  token: string,
  digest: string = tokenDigest(token),
): Promise<VerifiedToken> {
  let verified = ctx.verifiedCache.get(token, ctx.service, digest);
  if (verified === undefined) {
    verified = await ctx.verifier.verify(token, { audience: ctx.service });
    ctx.verifiedCache.set(token, ctx.service, verified, digest);
  }
  return verified;
}

/** The subject of an outbound call, or undefined for a call on nobody's behalf (service identity). */
export async function findSubject(
  ctx: Pick<SidecarContext, 'service' | 'verifier' | 'verifiedCache' | 'handles' | 'maxTokenBytes'>,
  req: Pick<RequestHead, 'headers' | 'rawHeaders'>,
): Promise<Subject | undefined> {
  const handle = req.headers[IdentityHeader.context];
  if (handle !== undefined) {
    const opened = typeof handle === 'string' ? ctx.handles.resolve(handle) : undefined;
    if (opened === undefined)
      throw new UnauthenticatedError(
        'expected a live baton-context handle from an inbound request, got an unknown, altered or expired one',
      );
    // The handle's token was verified for this service at the inbound port; the cache usually still holds it.
    return {
      subjectToken: opened.subjectToken,
      verified: await verifiedFor(ctx, opened.subjectToken),
      request: opened.requestId,
    };
  }
  const token = bearerToken(req, ctx.maxTokenBytes);
  if (token === undefined) return undefined;
  // A token the app forwards must have been addressed to this service: it is what the app was given.
  return { subjectToken: token, verified: await verifiedFor(ctx, token) };
}

/** A token for `audience`: exchanged for the subject (RFC 8693), or this service's own (client credentials). */
export async function obtainToken(
  ctx: Pick<SidecarContext, 'metrics' | 'tracing'>,
  exchanger: TokenExchanger | undefined,
  audience: string,
  subject: Subject | undefined,
  binding: CertificateBinding | undefined,
): Promise<IssuedToken> {
  if (exchanger === undefined)
    throw new StsUnavailableError('expected the STS token endpoint to be known, discovery has not succeeded yet');
  const started = performance.now();
  const issued =
    subject === undefined
      ? await exchanger.serviceToken({ audience, binding })
      : await exchanger.exchange({
          subjectToken: subject.subjectToken,
          subjectTokenType: TokenType.accessToken,
          audience,
          binding,
        });
  ctx.metrics.exchange(issued.cached, (performance.now() - started) / 1000);
  if (ctx.tracing.enabled) recordExchangeCache(issued.cached);
  return issued;
}
