/**
 * The STS's metrics, served as Prometheus text at `/metrics` on its port:
 * token requests by grant and outcome (`issued` or the RFC 6749 §5.2 error
 * code), and how long each took. Labels never name a client or a user.
 */
import {
  DURATION_BUCKETS,
  labelledHistogram,
  nestedCounter,
  renderFamily,
  renderHistogramFamily,
} from './prometheus-text.ts';

export type GrantLabel = 'token_exchange' | 'client_credentials' | 'other';

export interface StsMetrics {
  tokenRequest(grant: GrantLabel, outcome: string, seconds: number): void;
  render(): string;
}

export function createStsMetrics(): StsMetrics {
  const requests = nestedCounter('grant', 'outcome');
  const duration = labelledHistogram('grant', DURATION_BUCKETS);
  return {
    tokenRequest(grant, outcome, seconds) {
      requests.add(grant, outcome);
      duration.of(grant).observe(seconds);
    },
    render() {
      const lines: string[] = [];
      renderFamily(
        lines,
        'baton_sts_token_requests_total',
        'counter',
        'Token endpoint requests, by grant and outcome (issued, or the OAuth error code).',
        requests.series(),
      );
      renderHistogramFamily(
        lines,
        'baton_sts_token_request_duration_seconds',
        'Time to answer a token endpoint request, by grant.',
        duration.all(),
      );
      return lines.join('\n') + '\n';
    },
  };
}
