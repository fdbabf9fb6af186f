/**
 * The STS's metrics, served as Prometheus text at `/metrics` on its port:
 * token requests by grant and outcome (`issued` or the RFC 6749 §5.2 error
 * code), and how long each took. Labels never name a client or a user.
 */
import { counterFamily, histogramFamily } from './prometheus-text.ts';

export type GrantLabel = 'token_exchange' | 'client_credentials' | 'other';

export interface StsMetrics {
  tokenRequest(grant: GrantLabel, outcome: string, seconds: number): void;
  render(): string;
}

export function createStsMetrics(): StsMetrics {
  const requests = counterFamily('baton_sts_token_requests_total', 'Token endpoint requests, by grant and outcome (issued, or the OAuth error code).');
  const duration = histogramFamily('baton_sts_token_request_duration_seconds', 'Time to answer a token endpoint request, by grant.');
  return {
    tokenRequest(grant, outcome, seconds) {
      requests.add({ grant, outcome });
      duration.observe({ grant }, seconds);
    },
    render() {
      const lines: string[] = [];
      requests.render(lines);
      duration.render(lines);
      return lines.join('\n') + '\n';
    },
  };
}
