/**
 * The one service a token is minted for, from RFC 8693 §2.1 `audience`
 * (a service name: `orders`, or `orders.shop` in another namespace than the
 * mesh's home) and RFC 8707 `resource` (an absolute URI whose host names
 * the service by its first DNS label, or by its first two when the policy
 * knows a service of that name, as `http://orders.shop/` does; or an entry
 * of `resources:`).
 */
import { isServiceName } from '../core/service-name.ts';
import { InvalidTargetError } from './errors.ts';

export interface TargetRequest {
  readonly audiences: readonly string[];
  readonly resources: readonly string[];
}

export interface AudienceResolver {
  resolve(request: TargetRequest, knownService: (name: string) => boolean): string;
}

export function createAudienceResolver(resources: Readonly<Record<string, string>>): AudienceResolver {
  const explicit = new Map(Object.entries(resources));
  const fromResource = (resource: string, knownService: (name: string) => boolean): string => {
    const mapped = explicit.get(resource);
    if (mapped !== undefined) return mapped;
    let url: URL;
    try {
      url = new URL(resource);
    } catch {
      throw new InvalidTargetError('expected resource to be an absolute URI (RFC 8707 §2), got something else');
    }
    // RFC 8707 §2: the resource URI MUST NOT include a fragment component.
    if (resource.includes('#'))
      throw new InvalidTargetError('expected a resource URI without a fragment (RFC 8707 §2)');
    const labels = url.hostname.split('.');
    const label = labels[0] ?? '';
    if (!isServiceName(label) || /^\d+$/.test(label)) {
      throw new InvalidTargetError(
        'expected the resource host to name a service by its first DNS label, got an address',
      );
    }
    // orders.shop(.svc.cluster.local): the service orders in namespace shop, when the policy has it.
    const qualified = labels.length >= 2 ? `${label}.${labels[1]}` : undefined;
    return qualified !== undefined && isServiceName(qualified) && knownService(qualified) ? qualified : label;
  };
  return {
    resolve(request, knownService) {
      const targets = new Set<string>();
      for (const audience of request.audiences) targets.add(explicit.get(audience) ?? audience);
      for (const resource of request.resources) targets.add(fromResource(resource, knownService));
      if (targets.size === 0)
        throw new InvalidTargetError('expected an audience or a resource naming the target service, got neither');
      if (targets.size > 1)
        throw new InvalidTargetError(`expected exactly one target service (a token has one aud), got ${targets.size}`);
      const [target] = targets;
      if (target === undefined || !isServiceName(target) || !knownService(target)) {
        throw new InvalidTargetError(
          'expected the target to be a service in the call-graph policy, got an unknown one',
        );
      }
      return target;
    },
  };
}
