/**
 * A service name as the call-graph policy spells it. Branded so that a raw
 * string from a header or a token cannot be passed where a validated name is
 * expected; `serviceName` and `isServiceName` are the only ways to get one.
 */
import { DNS1123_LABEL } from './dns-label.ts';
import { ServiceNameInvalidError } from './errors.ts';

// A DNS-1123 label: what Kubernetes and compose accept as a service name.
export type ServiceName = string & { readonly __brand: 'ServiceName' };

export function isServiceName(value: unknown): value is ServiceName {
  return typeof value === 'string' && DNS1123_LABEL.test(value);
}

/** Mints a `ServiceName`, or throws `BATON_SERVICE_NAME_INVALID` naming what it got. */
export function serviceName(text: string): ServiceName {
  if (!isServiceName(text)) {
    throw new ServiceNameInvalidError(`expected a service name (DNS-1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit), got ${JSON.stringify(text.slice(0, 80))}${text.length > 80 ? '…' : ''}`);
  }
  return text;
}
