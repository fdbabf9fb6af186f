/**
 * The decision core of `baton authz`: what the sidecar's ports decide,
 * for a request a proxy (Envoy, Istio's istio-proxy, nginx) asks about and
 * then moves itself. Both front ends (./grpc.ts, ./http.ts) read the
 * proxy's question into a `ProxyCheck` and write the `Verdict` back in
 * their protocol. Every step is a function the sidecar's ports call
 * (src/sidecar/): the same verifier and caches, binding, edge check, audit
 * line, spans, metrics, handles and exchanger.
 *
 * Around the steps (as src/sidecar/pipeline.ts does for a stream): admit
 * (the in-flight limit) → span (tracing on: inbound SERVER, outbound
 * CLIENT, children of the trace context the request carries) → ready (a
 * verified policy, read once with its version) → the direction's steps →
 * a refusal mapped to an HttpError, never echoing a foreign message →
 * metrics → the `request_failed` line a 5xx gets.
 *
 * Inbound (the proxy in front of this service asks before forwarding):
 *
 *   1. unambiguous path → 2. peer (the principal and certificate the proxy
 *   verified) → 3. bearer token → 4. verify (cached until exp) and this
 *   user's share → 5. certificate binding (RFC 8705 §3) → 6. chain check
 *   against the policy → 7. identity headers and the context handle to
 *   set, Authorization and every other baton-* header to remove
 *
 * Outbound (the proxy the app calls through asks before sending on):
 *
 *   1. target service → 2. unambiguous path → 3. this workload's
 *   certificate (mtls: what the exchanged token is bound to) → 4. subject
 *   (baton-context handle, a forwarded token, or this service's own
 *   identity) and this user's share → 5. edge check (before any exchange)
 *   → 6. token exchange (RFC 8693), cached → 7. `Authorization: Bearer`
 *   to set, baton-context and every other baton-* header to remove
 *
 * Steps 2–6 of inbound and 4–5 of outbound consult the decision cache
 * (./decision-cache.ts) first; an entry replays the decision, and the check
 * is audited and answered as if decided now.
 */
import { type Span, context } from '@opentelemetry/api';
import { BadRequestError, type HttpError, NotReadyError, OverloadedError } from '../core/errors.ts';
import { canonicalServiceName, isServiceName } from '../core/service-name.ts';
import { toProblem } from '../core/problem.ts';
import type { MeshClient } from '../identity/mesh-client.ts';
import type { ServiceMap } from '../identity/service-map.ts';
import type { Decision, DecisionInput } from '../policy/language/decision.ts';
import type { PolicySnapshot, SidecarContext } from '../sidecar/collaborators.ts';
import { REQUEST_HEADER } from '../sidecar/context-handles.ts';
import type { CertificateBinding, TokenExchanger } from '../sidecar/exchange/exchanger.ts';
import {
  FairShareExceededError,
  TokenCertificateRequiredError,
  UnauthenticatedError,
  UnknownServiceError,
} from '../sidecar/errors.ts';
import { IdentityHeader, isBatonHeader, verifiedIdentityHeaders } from '../sidecar/headers.ts';
import { type Direction, FORWARDED, type RequestMetrics, UNKNOWN_TARGET } from '../sidecar/metrics.ts';
import {
  type Admitted,
  asHttpError,
  auditRequestFailed,
  type Inflight,
  problemHeaders,
  recordRefusal,
} from '../sidecar/pipeline.ts';
import { bearerToken, originFormPath, refuseAmbiguousPath, requestTarget } from '../sidecar/request.ts';
import { findSubject, obtainToken, type Subject, verifiedFor } from '../sidecar/subject.ts';
import { checkSidecarEdge, checkTokenBinding, type Listener, type Peer } from '../sidecar/edge-check.ts';
import {
  endHttpSpan,
  endpointOf,
  type HttpSpan,
  startEgressSpan,
  startServerSpan,
  traceHeaders,
} from '../telemetry/http-spans.ts';
import { tokenDigest } from '../token/verified-cache.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { DecisionCache, DecisionKey } from './decision-cache.ts';
import { MalformedCheckError } from './errors.ts';
import { peerOfProxy, type ProxyPeer } from './peer.ts';

export type CheckDirection = Direction;

/** The request a proxy asks about, as either front end reads it. */
export interface ProxyCheck {
  readonly direction: CheckDirection;
  readonly method: string;
  /** The request target as the proxy received it: path and query, origin-form, not decoded. */
  readonly path: string;
  /** The request's Host (`:authority`): outbound, the target service unless the proxy names it. */
  readonly host: string | undefined;
  /** Lower-case names; a repeated field's values joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** `[name, value, …]`, each field as sent where the proxy passed them one by one (else one per name). */
  readonly rawHeaders: readonly string[];
  /** The peer the proxy verified, when it terminated mTLS. */
  readonly peer?: ProxyPeer | undefined;
  /** Outbound: the target service the proxy's configuration names (a context extension); else read from the Host. */
  readonly target?: string | undefined;
  /** `HTTP/1.1`, `HTTP/2`…, for the span. */
  readonly protocol?: string | undefined;
  /** The downstream address as the proxy saw it, for the span. */
  readonly clientAddress?: string | undefined;
}

/** The answer, in the terms both front ends translate: fields to set and to remove, or a refusal. */
export type Verdict = Allowed | Denied;

export interface Allowed {
  readonly allowed: true;
  /** Fields to set on the request, overwriting any the caller sent: `[name, value, …]`. */
  readonly set: readonly string[];
  /** Lower-case names of fields to remove from the request before it goes on. */
  readonly remove: readonly string[];
  /** How long a cache in front of baton (nginx proxy_cache) may reuse this answer: 0 for never. */
  readonly maxAgeSeconds: number;
}

export interface Denied {
  readonly allowed: false;
  readonly error: HttpError;
  /** The problem document's head, Content-Length aside: `[name, value, …]` (Content-Type, WWW-Authenticate, Retry-After…). */
  readonly headers: readonly string[];
  /** The RFC 9457 problem document. */
  readonly body: string;
}

/** What the core needs besides the sidecar's context (src/sidecar/collaborators.ts), which it reuses as it is. */
export interface AuthzContext extends Omit<SidecarContext, 'forwarder'> {
  readonly exchanger: () => TokenExchanger | undefined;
  /** mtls mode: this workload's certificate (what exchanged tokens are bound to) and the SPIFFE rule peers are read with. */
  readonly mesh: { readonly client: MeshClient; readonly map: ServiceMap } | undefined;
  readonly decisions: DecisionCache;
  readonly inflight: Inflight;
  /** The STS's issuer: the subject issuer of this service's own identity. */
  readonly stsIssuer: string;
  readonly forwardToken: boolean;
  /** `ignore`: the proxy's certificates are its own (Istio's), never the ones tokens are bound to: only its principal is read. */
  readonly peerCertificate: 'optional' | 'required' | 'ignore';
  readonly cacheMaxAgeSeconds: number;
  /** exchange.expiryMarginSeconds: an answer carrying an exchanged token is not reused closer than this to its exp. */
  readonly exchangeMarginSeconds: number;
  readonly domainSuffixes: readonly string[];
  /** The mesh's home namespace (spiffe.namespace): `payments.<home>` is `payments`. */
  readonly homeNamespace: string;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

export interface Authorizer {
  check(request: ProxyCheck): Promise<Verdict>;
  /** A question a front end refuses before it is a check (no such path, a malformed CheckRequest): counted, audited and answered as a check's refusal. */
  refuse(direction: CheckDirection, method: string | undefined, error: HttpError): Denied;
}

/** Every identity field baton writes: removed whenever this answer does not set it, so a caller's copy never survives. */
const IDENTITY_FIELDS: readonly string[] = Object.values(IdentityHeader);

interface Call {
  requests: RequestMetrics;
  credential: boolean;
}

export function createAuthorizer(ctx: AuthzContext): Authorizer {
  const { service, metrics } = ctx;
  const { enabled: traced, tracer } = ctx.tracing;
  const listener: Listener = ctx.mesh === undefined ? 'plaintext' : 'mtls';
  const inboundRequests = metrics.requests('inbound', service);
  const untargeted = metrics.requests('outbound', UNKNOWN_TARGET);

  return {
    async check(request) {
      const started = performance.now();
      const call: Call = {
        requests: request.direction === 'inbound' ? inboundRequests : untargeted,
        credential: false,
      };
      const slot = admission();
      let span: HttpSpan | undefined;
      try {
        // Admit: refused at once rather than queued; the proxy denies.
        if (!ctx.inflight.admit(slot))
          throw new OverloadedError('expected fewer checks in flight, the limit is reached');
        span = traced ? startSpan(request) : undefined;
        const verdict =
          span === undefined
            ? await steps(request, call, slot)
            : await context.with(span.context, steps, undefined, request, call, slot);
        call.requests.done(200, FORWARDED, (performance.now() - started) / 1000);
        if (span !== undefined) endHttpSpan(span.span, request.direction === 'inbound' ? 'server' : 'client', 200);
        return verdict;
      } catch (error) {
        const problem = asHttpError(error);
        refused(request.direction, request.method, span?.span, problem);
        call.requests.done(problem.status, problem.code, (performance.now() - started) / 1000);
        if (span !== undefined)
          endHttpSpan(span.span, request.direction === 'inbound' ? 'server' : 'client', problem.status, problem.code);
        return denial(problem, call.credential);
      } finally {
        slot.close();
      }
    },
    refuse(direction, method, error) {
      refused(direction, method, undefined, error);
      (direction === 'inbound' ? inboundRequests : untargeted).done(error.status, error.code, 0);
      return denial(error, false);
    },
  };

  /** The sidecar's accounting of a refusal, and an audit line for a malformed check: the proxy's fault, and a request denied for it. */
  function refused(
    direction: CheckDirection,
    method: string | undefined,
    span: Span | undefined,
    problem: HttpError,
  ): void {
    recordRefusal(ctx, direction, method, span, problem);
    if (problem.code === MalformedCheckError.code) auditRequestFailed(ctx.logger, direction, method, problem);
  }

  async function steps(request: ProxyCheck, call: Call, slot: Admitted): Promise<Allowed> {
    // The policy and its version read once, as one value, for the whole check.
    const snapshot = ctx.policy.snapshot();
    if (snapshot === undefined || !ctx.readiness.ready)
      throw new NotReadyError('expected a verified call-graph policy and the STS keys, have not got them yet');
    return request.direction === 'inbound'
      ? inbound(request, call, slot, snapshot)
      : outbound(request, call, slot, snapshot);
  }

  async function inbound(
    request: ProxyCheck,
    call: Call,
    slot: Admitted,
    { policy, version }: PolicySnapshot,
  ): Promise<Allowed> {
    // 1. A path the app's server could read as another one is refused outright.
    const path = originFormPath(request.path);
    refuseAmbiguousPath(path);

    // 2. The peer the proxy verified: a principal or certificate that maps to no service is refused. A proxy whose
    //    certificates are its own (Istio's) is read for the principal alone: their thumbprints bind no token.
    const described = ctx.peerCertificate === 'ignore' ? { principal: request.peer?.principal } : request.peer;
    const peer = ctx.mesh === undefined ? undefined : peerOfProxy(described, ctx.mesh.map);

    // 3. The bearer token, limited before anything parses it.
    const token = bearerToken(request, ctx.maxTokenBytes);
    if (token === undefined) throw new UnauthenticatedError('expected an Authorization: Bearer token, got none');
    call.credential = true;

    // 4. Verify (cached until exp), or the decision made for this very question. One user holds only its share.
    const digest = tokenDigest(token);
    const key: DecisionKey = {
      direction: 'inbound',
      target: service,
      policyVersion: version,
      tokenDigest: digest,
      peer: peerKey(peer),
      method: request.method,
      path,
    };
    const cached = ctx.decisions.get(key);
    const verified =
      cached?.verified ?? ctx.verifiedCache.get(token, service, digest) ?? (await verifiedFor(ctx, token, digest));
    shareOf(slot, verified);

    // 5. RFC 8705 §3: a bound token only with its certificate, from the workload it names as caller.
    if (cached === undefined) {
      if (
        verified.confirmation !== undefined &&
        ctx.peerCertificate === 'required' &&
        peer !== undefined &&
        peer.thumbprint === undefined
      ) {
        throw new TokenCertificateRequiredError(
          "expected the proxy to pass the client certificate this token is bound to (inbound.peerCertificate: required), got the peer's principal only",
        );
      }
      checkTokenBinding(verified, peer, listener);
    }

    // 6. The chain against the policy for this method and path; the request id continues a mesh caller's.
    const requestId =
      (verified.kind === 'mesh' ? ctx.requestIds.accept(request.headers[REQUEST_HEADER]) : undefined) ??
      ctx.requestIds.mint();
    const input: DecisionInput = {
      chain: verified.chain,
      target: service,
      method: request.method,
      path,
      scopes: verified.scopes,
      acr: verified.acr,
      user: verified.user,
      subjectIssuer: verified.subjectIssuer,
    };
    decide(policy, key, input, cached, verified, {
      direction: 'inbound',
      subject: verified.subject,
      subjectIssuer: verified.subjectIssuer,
      txn: verified.txn,
      request: requestId,
      policyVersion: version,
      ...(peer === undefined ? {} : { peer: peer.spiffeId }),
      bound: verified.confirmation !== undefined,
    });

    // 7. Only baton speaks in baton-* fields: the verified identity and the handle set, every other one removed.
    const contextHandle = ctx.handles.issue(token, verified, requestId);
    const set = verifiedIdentityHeaders(verified, requestId, contextHandle);
    if (traced) set.push(...traceHeaders(context.active()));
    const remove = removals(request, set, ctx.forwardToken ? [] : ['authorization']);
    return { allowed: true, set, remove, maxAgeSeconds: maxAge(lastUse(verified)) };
  }

  async function outbound(
    request: ProxyCheck,
    call: Call,
    slot: Admitted,
    { policy, version }: PolicySnapshot,
  ): Promise<Allowed> {
    call.credential =
      request.headers.authorization !== undefined || request.headers[IdentityHeader.context] !== undefined;

    // 1. Which service the app is calling: named by the proxy's configuration, else by the Host it sends to.
    const target = targetOf(request);
    if (!policy.hasService(target))
      throw new UnknownServiceError(`expected a service the call-graph policy names, got '${target}'`);
    call.requests = metrics.requests('outbound', target);

    // 2. A path the upstream's server could read as another one is refused outright.
    const path = originFormPath(request.path);
    refuseAmbiguousPath(path);

    // 3. mtls: the certificate this authorizer presents to the STS, which binds the exchanged token to it (docs/security.md).
    const generation = ctx.mesh?.client.current();
    if (ctx.mesh !== undefined && generation === undefined)
      throw new NotReadyError(
        'expected a valid workload certificate for mTLS, have none (missing or expired); no token is obtained without it',
        { reason: 'identity' },
      );
    const binding: CertificateBinding | undefined =
      generation === undefined ? undefined : { thumbprint: generation.svid.thumbprint, dispatcher: generation.agent };

    // 4. On whose behalf: the handle the app was given, a token it forwarded, or nobody (service identity).
    const subject: Subject | undefined = await findSubject(ctx, request);
    const requestId = subject?.request ?? ctx.requestIds.mint();
    if (subject !== undefined) shareOf(slot, subject.verified);

    // 5. The edge this call would add, checked before the STS is asked.
    const key: DecisionKey = {
      direction: 'outbound',
      target,
      policyVersion: version,
      tokenDigest: subject === undefined ? undefined : tokenDigest(subject.subjectToken),
      peer: undefined,
      method: request.method,
      path,
    };
    const cached = ctx.decisions.get(key);
    const input: DecisionInput =
      subject === undefined
        ? // The service token's scopes are not known before it is minted; the most the STS could grant on this edge is.
          {
            chain: [service],
            target,
            method: request.method,
            path,
            scopes: policy.usableScopes(service, target) ?? new Set(),
            user: false,
            subjectIssuer: ctx.stsIssuer,
          }
        : {
            chain: [...(subject.verified.kind === 'mesh' ? subject.verified.chain : []), service],
            target,
            method: request.method,
            path,
            scopes: subject.verified.scopes,
            acr: subject.verified.acr,
            user: subject.verified.user,
            subjectIssuer: subject.verified.subjectIssuer,
          };
    decide(policy, key, input, cached, subject?.verified, {
      direction: 'outbound',
      subject: subject?.verified.subject ?? service,
      subjectIssuer: subject?.verified.subjectIssuer ?? ctx.stsIssuer,
      txn: subject?.verified.txn,
      request: requestId,
      policyVersion: version,
    });

    // 6. A token for the target: exchanged for the subject, client credentials otherwise; cached, single-flight.
    const issued = await obtainToken(ctx, ctx.exchanger(), target, subject, binding);

    // 7. The upstream gets the new token and the request id; the handle and every other baton-* field stay here.
    const set = ['authorization', `Bearer ${issued.accessToken}`, REQUEST_HEADER, requestId];
    if (traced) set.push(...traceHeaders(context.active()));
    const lastUseOfToken = issued.expiresAt - ctx.exchangeMarginSeconds;
    return {
      allowed: true,
      set,
      remove: removals(request, set, []),
      maxAgeSeconds: maxAge(
        subject === undefined ? lastUseOfToken : Math.min(lastUseOfToken, lastUse(subject.verified)),
      ),
    };
  }

  /** The policy's decision (or the cached one for this key), audited, counted and enforced as the sidecar does. */
  function decide(
    policy: PolicySnapshot['policy'],
    key: DecisionKey,
    input: DecisionInput,
    cached: { readonly decision: Decision } | undefined,
    verified: VerifiedToken | undefined,
    audit: {
      direction: Direction;
      subject: string | undefined;
      subjectIssuer: string | undefined;
      txn: string | undefined;
      request: string;
      policyVersion: number;
      peer?: string;
      bound?: boolean;
    },
  ): void {
    const decision = cached?.decision ?? policy.decide(input);
    if (cached === undefined) ctx.decisions.set(key, { verified, decision });
    checkSidecarEdge(
      policy,
      input,
      { ...audit, service, logger: ctx.logger, metrics, traced, pseudonym: ctx.subjectPseudonym },
      decision,
    );
  }

  function shareOf(slot: Admitted, verified: VerifiedToken): void {
    if (
      verified.user &&
      !ctx.inflight.share(slot, 'subject', `${verified.kind}\n${verified.subjectIssuer}\n${verified.subject}`)
    ) {
      throw new FairShareExceededError(
        'expected this user to hold fewer checks in flight, its share of the limit is used up',
      );
    }
  }

  /** The target service of an outbound check: the proxy's word, else the Host, its DNS suffix cut and its home namespace dropped. */
  function targetOf(request: ProxyCheck): string {
    if (request.target !== undefined) {
      if (!isServiceName(request.target))
        throw new MalformedCheckError(
          `expected the target service the proxy names to be a service name, got '${request.target.slice(0, 64)}'`,
          { extensions: { reason: 'target' } },
        );
      return request.target;
    }
    const host = request.host;
    if (host === undefined || host === '')
      throw new BadRequestError('expected a Host naming the target service, got none');
    let name = host.replace(/:\d+$/, '').toLowerCase();
    for (const suffix of ctx.domainSuffixes) {
      if (name.endsWith(suffix) && name.length > suffix.length) {
        name = name.slice(0, -suffix.length);
        break;
      }
    }
    // The sidecar's reading of a target (src/sidecar/request.ts), on the name the suffixes leave.
    const read = requestTarget({ method: request.method, url: '/', headers: { host: name } }).service;
    const dot = read.indexOf('.');
    return dot === -1 ? read : canonicalServiceName(read.slice(0, dot), read.slice(dot + 1), ctx.homeNamespace);
  }

  /** Tracing: a SERVER span for an inbound check, a CLIENT span for an outbound one, as the sidecar's ports make. */
  function startSpan(request: ProxyCheck): HttpSpan {
    const pathOnly = request.path.split('?', 1)[0] as string;
    if (request.direction === 'inbound') {
      const httpVersion = /^HTTP\/(\d(?:\.\d)?)$/i.exec(request.protocol ?? '')?.[1] ?? '1.1';
      return startServerSpan(
        tracer,
        {
          method: request.method,
          url: request.path,
          httpVersion,
          headers: request.headers,
          socket: { remoteAddress: request.clientAddress },
        },
        pathOnly,
      );
    }
    let to: Parameters<typeof startEgressSpan>[2];
    try {
      const target = targetOf(request);
      to =
        ctx.policy.snapshot()?.policy.hasService(target) === true
          ? { service: target, upstream: endpointOf(new URL(`http://${target}`)), target: request.path }
          : undefined;
    } catch {
      to = undefined;
    }
    return startEgressSpan(tracer, { method: request.method, headers: request.headers }, to);
  }

  /** Seconds a cache in front of baton may reuse an allowed answer: never past `lastUseSeconds` (epoch seconds), never past the configured bound. */
  function maxAge(lastUseSeconds: number): number {
    return Math.max(0, Math.min(ctx.cacheMaxAgeSeconds, Math.floor(lastUseSeconds - ctx.now() / 1000)));
  }
}

/** The fields to remove: `always`, every identity field the answer does not set, and every baton-* field the caller sent. */
function removals(request: ProxyCheck, set: readonly string[], always: readonly string[]): string[] {
  const written = new Set<string>();
  for (let i = 0; i < set.length; i += 2) written.add(set[i] as string);
  const remove = new Set(always);
  for (const name of IDENTITY_FIELDS) if (!written.has(name)) remove.add(name);
  for (const name of Object.keys(request.headers)) if (isBatonHeader(name) && !written.has(name)) remove.add(name);
  return [...remove];
}

/** Epoch seconds: the token's exp, or earlier when its issuer's answer may be trusted only so long (introspection). */
function lastUse(verified: VerifiedToken): number {
  return verified.reuseUntil === undefined ? verified.expiresAt : Math.min(verified.reuseUntil, verified.expiresAt);
}

function peerKey(peer: Peer | undefined): string | undefined {
  return peer === undefined ? undefined : `${peer.spiffeId} ${peer.thumbprint ?? '-'}`;
}

/** A refusal as both front ends write it: the sidecar's problem document and head. */
function denial(error: HttpError, credential: boolean): Denied {
  return { allowed: false, error, headers: problemHeaders(error, credential), body: JSON.stringify(toProblem(error)) };
}

/** A slot in the in-flight limit, released when the check is answered. */
function admission(): Admitted & { close(): void } {
  let listeners: Array<() => void> | undefined = [];
  return {
    onClose(listener) {
      if (listeners === undefined) listener();
      else listeners.push(listener);
    },
    close() {
      const pending = listeners;
      listeners = undefined;
      for (const listener of pending ?? []) listener();
    },
  };
}
