/**
 * Unwinding and building the RFC 8693 §4.1 `act` claim. The claim nests
 * the newest actor outermost: `{sub: orders, act: {sub: gateway}}` is the
 * chain gateway → orders. baton's chains are written origin first.
 */
import type { ActClaim } from './claims.ts';
import { BatonError } from './errors.ts';

/**
 * An `act` claim that is no chain baton can use: BATON_TOKEN_ACT_INVALID,
 * the code a token verifier answers it with, and reason `malformed` or
 * `too-deep` (beyond the configured depth: a limit to raise, or a loop).
 */
export class ActChainError extends BatonError {
  declare readonly reason: 'too-deep' | 'malformed';
  constructor(reason: 'too-deep' | 'malformed', message: string) {
    super('BATON_TOKEN_ACT_INVALID', message, { reason });
    this.name = 'ActChainError';
  }
}

/**
 * The actors of an `act` claim, origin first. Stops at `maxDepth` without
 * walking further, so a token nested a thousand deep costs no more than
 * one at the limit.
 */
export function unwindAct(act: unknown, maxDepth: number): string[] {
  const newestFirst: string[] = [];
  let node: unknown = act;
  while (node !== undefined) {
    if (newestFirst.length >= maxDepth) {
      throw new ActChainError('too-deep', `expected an act chain of at most ${maxDepth} actors, got more`);
    }
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new ActChainError('malformed', 'expected act to be a JSON object');
    }
    const { sub, act: inner } = node as { sub?: unknown; act?: unknown };
    if (typeof sub !== 'string' || sub === '') {
      throw new ActChainError('malformed', 'expected every act member to have a non-empty string sub');
    }
    newestFirst.push(sub);
    node = inner;
  }
  return newestFirst.reverse();
}

/** The `act` claim for a chain written origin first; undefined for an empty chain. */
export function buildAct(chain: readonly string[]): ActClaim | undefined {
  let act: ActClaim | undefined;
  for (const sub of chain) {
    act = act === undefined ? { sub } : { sub, act };
  }
  return act;
}

/**
 * The chain of callers a baton token carries, origin first. An exchanged
 * token's `act` holds the whole chain and its outermost actor must be the
 * immediate caller (`client_id`); a client-credentials token has no `act`
 * and its chain is the client alone.
 */
export function callerChain(
  claims: { readonly act?: unknown; readonly client_id?: unknown },
  maxDepth: number,
): string[] {
  if (typeof claims.client_id !== 'string' || claims.client_id === '') {
    throw new ActChainError('malformed', 'expected a client_id claim naming the immediate caller');
  }
  if (claims.act === undefined) return [claims.client_id];
  const chain = unwindAct(claims.act, maxDepth);
  if (chain[chain.length - 1] !== claims.client_id) {
    throw new ActChainError('malformed', 'expected the outermost act.sub to equal client_id');
  }
  return chain;
}
