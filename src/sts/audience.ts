/**
 * The one service a token is minted for, from RFC 8693 §2.1 `audience`
 * (a service name) and RFC 8707 `resource` (an absolute URI whose host's
 * first DNS label names the service, or an entry of `resources:`).
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
  const fromResource = (resource: string): string => {
    const mapped = explicit.get(resource);
    if (mapped !== undefined) return mapped;
    let url: URL;
    try {
      url = new URL(resource);
    } catch {
      throw new InvalidTargetError('expected resource to be an absolute URI (RFC 8707 §2), got something else');
    }
    // RFC 8707 §2: the resource URI MUST NOT include a fragment component.
    if (resource.includes('#')) throw new InvalidTargetError('expected a resource URI without a fragment (RFC 8707 §2)');
    const label = url.hostname.split('.')[0] ?? '';
    if (!isServiceName(label) || /^\d+$/.test(label)) {
      throw new InvalidTargetError('expected the resource host to name a service by its first DNS label, got an address');
    }
    return label;
  };
  return {
    resolve(request, knownService) {
      const targets = new Set<string>();
      for (const audience of request.audiences) targets.add(explicit.get(audience) ?? audience);
      for (const resource of request.resources) targets.add(fromResource(resource));
      if (targets.size === 0) throw new InvalidTargetError('expected an audience or a resource naming the target service, got neither');
      if (targets.size > 1) throw new InvalidTargetError(`expected exactly one target service (a token has one aud), got ${targets.size}`);
      const [target] = targets;
      if (target === undefined || !isServiceName(target) || !knownService(target)) {
        throw new InvalidTargetError('expected the target to be a service in the call-graph policy, got an unknown one');
      }
      return target;
    },
  };
}
