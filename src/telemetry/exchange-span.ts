/**
 * The token exchange in the trace. Every egress span says how its token
 * was obtained (`baton.exchange.cache`), so a slow hop shows whether it
 * waited for the STS. A CLIENT span of its own only when the in-process
 * cache could not answer (Redis, a refresh, the STS): a hit takes
 * microseconds, and a span per hit was half an outbound hop's spans. On a
 * miss the STS's SERVER span is this span's child: the STS request is sent
 * in its context.
 */
import { type Tracer, context, trace } from '@opentelemetry/api';
import { BatonAttribute } from './attributes.ts';
import { endHttpSpan, errorCode, startClientSpan } from './http-spans.ts';

const REFUSED = 'BATON_EXCHANGE_REFUSED';

export interface ExchangeOutcome {
  readonly cached: 'hit' | 'miss' | 'stale-refresh';
}

export async function withExchangeSpan<T extends ExchangeOutcome>(
  tracer: Tracer,
  tokenEndpoint: URL,
  audience: string,
  run: () => Promise<T>,
): Promise<T> {
  const exchange = startClientSpan(
    tracer,
    { method: 'POST', url: tokenEndpoint, route: tokenEndpoint.pathname },
    { [BatonAttribute.target]: audience },
  );
  try {
    const issued = await context.with(exchange.context, run);
    exchange.span.setAttributes({
      [BatonAttribute.exchangeCache]: issued.cached,
      [BatonAttribute.exchangeOutcome]: issued.cached === 'miss' ? 'issued' : 'cached',
    });
    if (issued.cached === 'miss') endHttpSpan(exchange.span, 'client', 200);
    else exchange.span.end();
    return issued;
  } catch (error) {
    const code = errorCode(error);
    const oauthError =
      typeof error === 'object' && error !== null && 'oauthError' in error
        ? (error as { oauthError: unknown }).oauthError
        : undefined;
    // Only the STS's considered answer is a refusal; anything else means it could not answer.
    exchange.span.setAttribute(
      BatonAttribute.exchangeOutcome,
      code === REFUSED && typeof oauthError === 'string' ? `refused:${oauthError}` : 'unavailable',
    );
    endHttpSpan(exchange.span, 'client', undefined, code);
    throw error;
  }
}

/** On the request's span: how the token it carries on was obtained. */
export function recordExchangeCache(cached: ExchangeOutcome['cached']): void {
  const span = trace.getActiveSpan();
  if (span !== undefined && span.isRecording()) span.setAttribute(BatonAttribute.exchangeCache, cached);
}
