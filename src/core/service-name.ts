/**
 * A service name as the call-graph policy spells it. Branded so that a raw
 * string from a header or a token cannot be passed where a validated name is
 * expected.
 */
export type ServiceName = string & { readonly __brand: 'ServiceName' };

// DNS-1123 label: what Kubernetes and compose accept as a service name.
const SERVICE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function isServiceName(value: unknown): value is ServiceName {
  return typeof value === 'string' && SERVICE_NAME.test(value);
}

export function asServiceName(value: string): ServiceName {
  if (!isServiceName(value)) {
    throw new TypeError(`expected a service name (DNS-1123 label), got ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}
