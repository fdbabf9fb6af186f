/**
 * A service name as the call-graph policy spells it. Branded so that a raw
 * string from a header or a token cannot be passed where a validated name is
 * expected; `serviceName` and `isServiceName` are the only ways to get one.
 *
 * A mesh spans namespaces (docs/identity.md, "Names across namespaces"): a
 * name is a DNS-1123 label, `orders`, for a service in the mesh's home
 * namespace (`spiffe.namespace`), or two labels, `orders.shop`, for the
 * service `orders` in the namespace `shop` — which is also how a pod in
 * another namespace reaches that Kubernetes Service by DNS. A namespace
 * named `accepts` or `entrypoint` cannot be named: rule ids
 * (`orders.shop.accepts[0]`) would read two ways.
 */
import { DNS1123_LABEL, SERVICE_NAME } from './dns-label.ts';
import { ServiceNameInvalidError } from './errors.ts';

export type ServiceName = string & { readonly __brand: 'ServiceName' };

/** Namespace labels a service name may not carry: the words rule ids use after a service. */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set(['accepts', 'entrypoint']);

export function isServiceName(value: unknown): value is ServiceName {
  if (typeof value !== 'string' || !SERVICE_NAME.test(value)) return false;
  const dot = value.indexOf('.');
  return dot === -1 || !RESERVED_NAMESPACES.has(value.slice(dot + 1));
}

/** Mints a `ServiceName`, or throws `BATON_SERVICE_NAME_INVALID` naming what it got. */
export function serviceName(text: string): ServiceName {
  if (!isServiceName(text)) {
    throw new ServiceNameInvalidError(
      `expected a service name (a DNS-1123 label of 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit, optionally followed by '.' and its namespace, another such label), got ${JSON.stringify(text.slice(0, 80))}${text.length > 80 ? '…' : ''}`,
    );
  }
  return text;
}

/** The two parts of a name: the service (its ServiceAccount) and, when qualified, its namespace. */
export interface QualifiedName {
  readonly service: string;
  /** Undefined for an unqualified name: the home namespace. */
  readonly namespace: string | undefined;
}

export function splitServiceName(name: string): QualifiedName {
  const dot = name.indexOf('.');
  return dot === -1
    ? { service: name, namespace: undefined }
    : { service: name.slice(0, dot), namespace: name.slice(dot + 1) };
}

/**
 * The one name of the service `service` in `namespace`, for a mesh whose home
 * namespace is `home`: unqualified at home, `<service>.<namespace>` elsewhere.
 * So a service has exactly one spelling (docs/identity.md).
 */
export function canonicalServiceName(service: string, namespace: string, home: string): string {
  if (!DNS1123_LABEL.test(service) || !DNS1123_LABEL.test(namespace))
    throw new ServiceNameInvalidError(
      `expected a service and a namespace that are DNS-1123 labels, got ${JSON.stringify(`${service}.${namespace}`.slice(0, 80))}`,
    );
  return namespace === home ? service : `${service}.${namespace}`;
}
