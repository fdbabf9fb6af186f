/**
 * Why an outbound token exchange produced no token. A refusal is the STS's
 * considered answer (RFC 6749 §5.2 / RFC 8693 §2.2.2) and is relayed to the
 * app as 403 with the OAuth error code; anything else means the STS could
 * not answer, and the app sees 503 (DESIGN "Failure behaviour").
 */
import { BatonError, type ErrorOptions, defineError } from '../../core/errors.ts';

const REFUSED = 'BATON_EXCHANGE_REFUSED';

/** One class for every refusal; `oauthError` carries which one (invalid_target, invalid_request, …). */
export class ExchangeRefusedError extends BatonError {
  static readonly code = REFUSED;
  constructor(oauthError: string, detail: string, options?: ErrorOptions) {
    super({ code: REFUSED, status: 403, title: 'Token exchange refused', oauthError }, detail, {
      ...options,
      extensions: { oauthError, ...options?.extensions },
    });
  }
}

export const StsUnavailableError = defineError({
  code: 'BATON_STS_UNAVAILABLE',
  status: 503,
  title: 'Token service unavailable',
  oauthError: 'temporarily_unavailable',
});
