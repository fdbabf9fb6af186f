/**
 * Why an outbound token exchange produced no token. A refusal is the STS's
 * considered answer (RFC 6749 §5.2 / RFC 8693 §2.2.2) and is relayed to the
 * app as 403 with the OAuth error code. Only `StsUnavailableError` (no
 * answer: transport failure, timeout, 5xx, or the circuit open) is an
 * outage and counts against the circuit breaker; a throttled request, an
 * answer that is not a token response, or a token already expired (the
 * user's own ran out: BATON_TOKEN_EXPIRED, reason `exchanged`) is the
 * request's own error, so a few of them cannot open the circuit for every
 * caller (DESIGN "Failure behaviour").
 */
import { type ErrorOptions, defineError } from '../../core/errors.ts';

const ExchangeRefused = defineError({ code: 'BATON_EXCHANGE_REFUSED', status: 403, title: 'Token exchange refused' });

/** One class for every refusal; `oauthError` carries which one (invalid_target, invalid_request, …). */
export class ExchangeRefusedError extends ExchangeRefused {
  override readonly oauthError: string;
  constructor(oauthError: string, detail: string, options?: ErrorOptions) {
    super(detail, { ...options, extensions: { oauthError, ...options?.extensions } });
    this.oauthError = oauthError;
  }
}

export const StsUnavailableError = defineError({
  code: 'BATON_STS_UNAVAILABLE',
  status: 503,
  title: 'Token service unavailable',
  oauthError: 'temporarily_unavailable',
});

export const StsThrottledError = defineError({
  code: 'BATON_STS_THROTTLED',
  status: 503,
  title: 'Token service asked to slow down',
  oauthError: 'temporarily_unavailable',
});

export const StsBadAnswerError = defineError({
  code: 'BATON_STS_BAD_ANSWER',
  status: 502,
  title: 'Token service answer unusable',
});
