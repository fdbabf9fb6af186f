/**
 * A service name as the call-graph policy spells it. Branded so that a raw
 * string from a header or a token cannot be passed where a validated name is
 * expected.
 */
import { DNS1123_LABEL } from './dns-label.ts';

// A DNS-1123 label: what Kubernetes and compose accept as a service name.
export type ServiceName = string & { readonly __brand: 'ServiceName' };

export function isServiceName(value: unknown): value is ServiceName {
  return typeof value === 'string' && DNS1123_LABEL.test(value);
}

export function asServiceName(value: string): ServiceName {
  if (!isServiceName(value)) {
    throw new TypeError(`expected a service name (DNS-1123 label), got ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}
