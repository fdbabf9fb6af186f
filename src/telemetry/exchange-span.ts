/**
 * The token exchange in the trace: a CLIENT span per exchange a request
 * needs, cache hits included (`baton.exchange.cache`), so a slow hop shows
 * whether it waited for the STS. On a miss the STS's SERVER span is this
 * span's child: the STS request is sent in its context.
 */
import { type Tracer, context } from '@opentelemetry/api';
import { BatonAttribute } from './attributes.ts';
import { endHttpSpan, errorCode, startClientSpan } from './http-spans.ts';

const REFUSED = 'BATON_EXCHANGE_REFUSED';

export interface ExchangeOutcome {
  readonly cached: 'hit' | 'miss' | 'stale-refresh';
}

export async function withExchangeSpan<T extends ExchangeOutcome>(tracer: Tracer, tokenEndpoint: URL, audience: string, run: () => Promise<T>): Promise<T> {
  const exchange = startClientSpan(tracer, { method: 'POST', origin: tokenEndpoint.origin, path: tokenEndpoint.pathname, route: tokenEndpoint.pathname }, { [BatonAttribute.target]: audience });
  try {
    const issued = await context.with(exchange.context, run);
    exchange.span.setAttributes({ [BatonAttribute.exchangeCache]: issued.cached, [BatonAttribute.exchangeOutcome]: issued.cached === 'miss' ? 'issued' : 'cached' });
    if (issued.cached === 'miss') endHttpSpan(exchange.span, 'client', 200);
    else exchange.span.end();
    return issued;
  } catch (error) {
    const code = errorCode(error);
    const oauthError = typeof error === 'object' && error !== null && 'oauthError' in error ? (error as { oauthError: unknown }).oauthError : undefined;
    // Only the STS's considered answer is a refusal; anything else means it could not answer.
    exchange.span.setAttribute(BatonAttribute.exchangeOutcome, code === REFUSED && typeof oauthError === 'string' ? `refused:${oauthError}` : 'unavailable');
    endHttpSpan(exchange.span, 'client', undefined, code);
    throw error;
  }
}
