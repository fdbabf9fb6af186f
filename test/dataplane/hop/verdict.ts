/**
 * The hop harness's oracle, as pure functions: what one client connection
 * ("a window") produced when its bytes went straight to an origin, and
 * what it produced through baton, compared under the normalization that
 * test/e2e/hop-differential.test.ts states in its header. Every
 * function returns the violations it found as sentences; an empty list is
 * a pass.
 */
import type { OriginEvent, ObservedRequest } from './origins.ts';
import { type FramedRequest, RequestFramer, trimOws } from './reference-framer.ts';
import type { Refusal } from './corpus.ts';
import type { User } from './mesh.ts';
import { batonRefusalOf, type ReadResponse } from './response-reader.ts';

/** What one client connection produced, seen from both ends. */
export interface Window {
  readonly user: User;
  /** Every byte the client wrote. */
  readonly sent: Buffer;
  /** The client's final answers, in order. */
  readonly responses: readonly ReadResponse[];
  /** The client's bytes stopped framing as answers. */
  readonly garbled: boolean;
  /** The connection was closed by the other end. */
  readonly closed: boolean;
  /** What the origin read meanwhile, in order (./origins.ts). */
  readonly events: readonly OriginEvent[];
  /** Bytes sent to the origin's listener meanwhile. */
  readonly bytesUpstream: number;
}

export type Leg = 'pair' | 'inbound';

// Fields the pair may remove, replace or add (the test file's header says why for each).
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
];
const FRAMING = ['content-length', 'transfer-encoding'];
const REPLACED = [
  'authorization',
  'expect',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];
const NOT_COMPARED: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...FRAMING, ...REPLACED]);

/** The identity headers only baton writes (docs/sidecar.md, "What your app receives"). */
export const IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  'baton-subject',
  'baton-subject-issuer',
  'baton-subject-type',
  'baton-caller',
  'baton-chain',
  'baton-scope',
  'baton-txn',
  'baton-request',
  'baton-context',
]);

const isBaton = (lowerName: string): boolean => lowerName.startsWith('baton-') || lowerName.startsWith('baton_');

/** A request as compared: everything the pair must carry over unchanged. */
export interface NormalRequest {
  readonly kind: 'request';
  readonly method: string;
  readonly target: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly framing: 'none' | 'length' | 'chunked' | 'any';
  readonly body: string;
  readonly complete: boolean;
  /** The Host value where it is the client's (the inbound leg): baton writes the field itself, first, so only its value is compared. */
  readonly host?: string;
}

type Normal = NormalRequest | { readonly kind: 'refused' };

/** The lower-case names the client's Connection fields name, anywhere in what it sent (an origin-side proxy may have removed them). */
export function connectionOptions(sent: Buffer): Set<string> {
  const named = new Set<string>();
  for (const match of sent.toString('latin1').matchAll(/(?:^|\n)[ \t]*connection[ \t]*:([^\r\n]*)/gi))
    for (const option of (match[1] as string).split(',')) named.add(trimOws(option).toLowerCase());
  return named;
}

/** Absolute-form as origin-form (RFC 9112 §3.2.2: the pair sends origin-form upstream). */
export function originForm(target: string): string {
  const absolute = /^http:\/\/[^/?#]*/i.exec(target);
  if (absolute === null) return target;
  const rest = target.slice(absolute[0].length);
  return rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
}

export interface NormalizeOptions {
  /** Lower-case names the client's Connection named: the pair drops them. */
  readonly named: ReadonlySet<string>;
  /** Host is the upstream's authority on this leg, not the client's. */
  readonly hostReplaced: boolean;
  /** The client sent no X-Request-Id: the pair may add one. */
  readonly requestIdAdded: boolean;
  /**
   * Against the RFC reading of the client's bytes rather than an origin's: names compared without case,
   * Host not compared, the framing kind not compared (an origin-side proxy lower-cases names, sets Host,
   * and may frame a body again).
   */
  readonly loose?: boolean;
}

export function normalize(event: OriginEvent | FramedRequest, options: NormalizeOptions): Normal {
  if (event.kind !== 'request') return { kind: 'refused' };
  const hosts = event.headers.filter(([name]) => name.toLowerCase() === 'host').map(([, value]) => value);
  const headers = event.headers
    .filter(([name]) => {
      const lower = name.toLowerCase();
      if (NOT_COMPARED.has(lower) || options.named.has(lower) || isBaton(lower)) return false;
      // Host is a framing field baton writes from its own parse (src/dataplane/wire.ts): its value is compared below, not its spelling or place.
      if (lower === 'host') return false;
      if (lower === 'x-request-id' && options.requestIdAdded) return false;
      return true;
    })
    .map(([name, value]) => [options.loose === true ? name.toLowerCase() : name, value] as const);
  const host = options.hostReplaced || options.loose === true ? {} : { host: hosts.join('\n') };
  return {
    kind: 'request',
    method: event.method,
    target: originForm(event.target),
    headers,
    framing: options.loose === true ? 'any' : event.framing,
    body: event.body.toString('latin1'),
    complete: event.complete,
    ...host,
  };
}

/** How RFC 9112 alone (./reference-framer.ts) reads `bytes`: the requests, then a refusal if it stopped at one. */
export function referenceReading(bytes: Buffer): Array<FramedRequest | { readonly kind: 'refused' }> {
  const out: Array<FramedRequest | { readonly kind: 'refused' }> = [];
  const framer = new RequestFramer({
    onHead: (request) => void out.push(request),
    onComplete: () => undefined,
    onRefuse: () => void out.push({ kind: 'refused' }),
  });
  framer.push(bytes);
  return out;
}

/** The identity checks on a request baton sent on: only baton's own baton-* fields, the window's user, no token, one Host. */
export function identityViolations(request: ObservedRequest, user: User): string[] {
  const out: string[] = [];
  const seen = new Map<string, string[]>();
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    seen.set(lower, [...(seen.get(lower) ?? []), value]);
  }
  for (const [name, values] of seen) {
    if (!isBaton(name)) continue;
    if (!IDENTITY_HEADERS.has(name))
      out.push(`the origin read a ${name} field that baton never writes (from the client)`);
    else if (values.length > 1) out.push(`the origin read ${values.length} ${name} fields (one from the client)`);
  }
  const subject = seen.get('baton-subject');
  if (subject?.length !== 1 || subject[0] !== user)
    out.push(
      `the origin read ${request.method} ${request.target} as baton-subject ${JSON.stringify(subject ?? null)}, sent by ${user}`,
    );
  const caller = seen.get('baton-caller');
  if (caller?.length !== 1 || caller[0] !== 'gateway')
    out.push(`the origin read baton-caller ${JSON.stringify(caller ?? null)}, expected gateway`);
  if (seen.has('authorization'))
    out.push('the origin read an Authorization field (the pair forwards no token to the app)');
  if (seen.get('host')?.length !== 1) out.push(`the origin read ${seen.get('host')?.length ?? 0} Host fields`);
  return out;
}

const describe = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'string' && v.length > 200 ? `${v.slice(0, 200)}…(${v.length})` : v,
  );

/** An origin's echo of a request (./origins.ts), if the answer is one. */
function echoOf(response: ReadResponse): { method: string; target: string; subject: string | null } | undefined {
  try {
    const echo = JSON.parse(response.body.toString('latin1')) as {
      method?: unknown;
      target?: unknown;
      subject?: unknown;
    };
    return typeof echo.method === 'string' && typeof echo.target === 'string'
      ? { method: echo.method, target: echo.target, subject: typeof echo.subject === 'string' ? echo.subject : null }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Two normal requests agree; the later one (`ours`) may be cut short when baton stopped there. */
function agree(ours: NormalRequest, theirs: NormalRequest, mayBeCut: boolean): boolean {
  const heads = describe({ ...ours, body: '', complete: true }) === describe({ ...theirs, body: '', complete: true });
  if (!heads) return false;
  if (ours.body === theirs.body && ours.complete === theirs.complete) return true;
  return mayBeCut && !ours.complete && theirs.body.startsWith(ours.body);
}

/**
 * One client connection, straight vs through baton. The rules, in order:
 * 1. a contract refusal (`refuse`) is answered as the contract says, and
 *    the origin is sent no byte;
 * 2. the origin never holds bytes of an unfinished head (a desync's residue);
 * 3. every request the origin read through baton passes the identity checks;
 * 4. the origin's reading through baton is its straight reading (less the
 *    requests baton answered itself), message for message under the
 *    normalization, or a prefix of it: shorter only
 *    where baton refused or closed, its last request then unfinished at
 *    most (its body a prefix of the straight one); where the origin itself
 *    refused the client's bytes, baton may have sent on what RFC 9112 reads
 *    in them (./reference-framer.ts), its body cut short at most, and
 *    nothing else (a head RFC 9112 refuses never goes upstream); a refusal
 *    with nothing read upstream sent not a byte;
 * 5. each answer the client got through baton echoes the request the origin
 *    read for it, in order, as the window's user; baton's refusals aside;
 * 6. an innocent connection (bob's, the canary) is read exactly as straight:
 *    no refusal, no prefix.
 */
export function compareWindows(
  direct: Window,
  via: Window,
  refuse: Refusal | undefined,
  leg: Leg,
  innocent = false,
): string[] {
  const out: string[] = [];
  const refusals = via.responses.map(batonRefusalOf).filter((r) => r !== undefined);
  // An innocent connection's well-formed requests are never refused nor cut: if they are, a connection was left dirty.
  if (innocent && refusals.length > 0)
    out.push(
      `baton refused ${via.user}'s well-formed request (${refusals.map((r) => `${r.status} ${r.code}${r.reason === undefined ? '' : ` ${r.reason}`}`).join(', ')}): a pooled connection was left dirty`,
    );
  const stopped = !innocent && (refusals.length > 0 || via.closed);

  // 1. The contract.
  if (refuse !== undefined) {
    const first = refusals[0];
    if (
      first === undefined ||
      first.status !== refuse.status ||
      (refuse.code !== undefined && first.code !== refuse.code)
    ) {
      out.push(
        `expected baton to refuse with ${refuse.status}${refuse.code === undefined ? '' : ` ${refuse.code}`}, the client got ${describe(via.responses.map((r) => batonRefusalOf(r) ?? { status: r.status, body: r.body.toString('latin1') }))}${via.closed ? ' and the connection closed' : ''}`,
      );
    } else if (first.code === 'BATON_REQUEST_FRAMING' && first.reason === undefined)
      out.push('expected the BATON_REQUEST_FRAMING problem to name its reason');
    if (via.bytesUpstream > 0) out.push(`expected not a byte upstream, the origin was sent ${via.bytesUpstream} bytes`);
  }

  // 2. Residue of a desync.
  for (const event of via.events)
    if (event.kind === 'partial')
      out.push(
        `${event.bytes} bytes of an unfinished head wait on an upstream connection (the origin will read them as the start of the next request on it)`,
      );

  // 3. Identity.
  const viaRequests = via.events.filter((e): e is ObservedRequest => e.kind === 'request');
  for (const request of viaRequests) out.push(...identityViolations(request, via.user));

  // 4. The origin's reading.
  // A request baton refused and answered itself (its answer's place in the client's answers says which) was not
  // sent on: the straight reading without it is what the origin should read through baton.
  const refusedAt = new Set(via.responses.flatMap((r, i) => (batonRefusalOf(r) === undefined ? [] : [i])));
  const straight = direct.events.filter((e, i) => e.kind !== 'partial' && !refusedAt.has(i));
  const through = via.events.filter((e) => e.kind !== 'partial');
  const named = new Set([...connectionOptions(direct.sent), ...connectionOptions(via.sent)]);
  const requestIdAdded =
    !direct.events.some((e) => e.kind === 'request' && e.headers.some(([n]) => n.toLowerCase() === 'x-request-id')) &&
    !/(^|\n)x-request-id[ \t]*:/im.test(via.sent.toString('latin1'));
  const options: NormalizeOptions = { named, hostReplaced: leg === 'pair', requestIdAdded };
  // The origin refused the client's bytes straight: an origin event, or an origin's own error answer.
  const originRefused =
    straight.some((e) => e.kind === 'refused') ||
    direct.responses.some((r) => r.status >= 400 && echoOf(r) === undefined);
  const reference = referenceReading(via.sent).filter((_, i) => !refusedAt.has(i));
  through.forEach((event, k) => {
    const ours = normalize(event, options);
    const counterpart = straight[k];
    const last = k === through.length - 1;
    if (counterpart !== undefined && counterpart.kind === 'request') {
      const theirs = normalize(counterpart, options);
      if (ours.kind === 'refused')
        out.push(
          `message ${k}: the origin refused what baton sent, but read the client's bytes as ${describe(theirs)}`,
        );
      else if (theirs.kind === 'request' && !agree(ours, theirs, last && stopped))
        out.push(`message ${k} differs:\n  straight: ${describe(theirs)}\n  through:  ${describe(ours)}`);
      return;
    }
    if (counterpart === undefined && !originRefused) {
      out.push(`the origin read one more message through baton than straight: ${describe(ours)}`);
      return;
    }
    // The origin refused these bytes straight.
    if (ours.kind === 'refused') return;
    const rfc = reference[k];
    const read = rfc?.kind === 'request' ? normalize(rfc, { ...options, loose: true }) : undefined;
    const loose = normalize(event, { ...options, loose: true });
    // Baton read it as RFC 9112 does (this origin is stricter), or sent on a head RFC 9112 reads too and cut its body.
    if (read?.kind === 'request' && loose.kind === 'request' && agree(loose, read, last && stopped)) return;
    out.push(
      `message ${k}: baton sent ${describe(ours)}, where the origin refuses the client's bytes and RFC 9112 reads ${read === undefined ? 'no request' : describe(read)}`,
    );
  });
  // The origin refusing bytes at the end that baton still holds (no whole head yet) is not a request baton dropped.
  const unread = straight.slice(through.length);
  if (unread.length > 0 && !stopped && unread.some((e) => e.kind === 'request'))
    out.push(
      `the origin read ${through.length} of the ${straight.length} messages it read straight, and baton neither refused nor closed: ${describe(straight.slice(through.length).map((e) => normalize(e, options)))}`,
    );
  const first = via.responses[0];
  if (first !== undefined && batonRefusalOf(first) !== undefined && viaRequests.length === 0 && via.bytesUpstream > 0)
    out.push(
      `baton refused (${refusals.map((r) => `${r.status} ${r.code}`).join(', ')}) after sending ${via.bytesUpstream} bytes upstream that the origin did not read as a request`,
    );

  // 5. The client's answers: each the origin's echo of the next request it read whole.
  if (via.garbled && !direct.garbled) out.push('the client could not frame the answers through baton');
  const whole = viaRequests.filter((r) => r.complete);
  let next = 0;
  for (const response of via.responses) {
    if (batonRefusalOf(response) !== undefined) continue;
    const echo = echoOf(response);
    if (echo === undefined) continue;
    const request = whole[next++];
    if (request === undefined)
      out.push(
        `the client got an answer through baton for a request the origin did not read in its window: ${describe(echo)}`,
      );
    else if (echo.method !== request.method || echo.target !== request.target)
      out.push(`the client got the answer to ${echo.method} ${echo.target} for ${request.method} ${request.target}`);
    if (echo.subject !== via.user)
      out.push(
        `${via.user}'s connection got an answer for a request read as ${JSON.stringify(echo.subject)}: ${echo.method} ${echo.target}`,
      );
  }
  return out;
}

/** One answer as a client read it: or its client failed to read one, or was left waiting. */
export type AnswerOutcome =
  | {
      readonly kind: 'answer';
      readonly status: number;
      readonly headers: ReadonlyArray<readonly [string, string]>;
      readonly body: Buffer;
    }
  | { readonly kind: 'error'; readonly code: string }
  | { readonly kind: 'hang' };

const ANSWER_NOT_COMPARED: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...FRAMING]);

function answerHeaders(
  outcome: { headers: ReadonlyArray<readonly [string, string]> },
  named: ReadonlySet<string>,
  dateAdded: boolean,
): Array<readonly [string, string]> {
  return outcome.headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return !ANSWER_NOT_COMPARED.has(lower) && !named.has(lower) && !(lower === 'date' && dateAdded);
  });
}

/**
 * The answer direction: the client's reading through baton is the straight
 * reading (status, end-to-end fields in order, body), or baton's own 502;
 * a failed straight reading may be a failed reading through baton too; a
 * client is never left waiting; `refuse` is the contract's 502.
 */
export function compareAnswers(direct: AnswerOutcome, via: AnswerOutcome, refuse: Refusal | undefined): string[] {
  if (via.kind === 'hang') return ['the client was left waiting for an answer through baton'];
  const refusal =
    via.kind === 'answer'
      ? batonRefusalOf({
          status: via.status,
          headers: via.headers.map(([n, v]) => [n.toLowerCase(), v] as const),
          body: via.body,
        })
      : undefined;
  if (refuse !== undefined) {
    if (
      refusal === undefined ||
      refusal.status !== refuse.status ||
      (refuse.code !== undefined && refusal.code !== refuse.code)
    )
      return [
        `expected baton to answer ${refuse.status}${refuse.code === undefined ? '' : ` ${refuse.code}`}, the client got ${describeAnswer(via)}`,
      ];
    return [];
  }
  if (refusal !== undefined)
    return refusal.status === 502
      ? []
      : [`baton answered ${refusal.status} ${refusal.code} where it may pass the answer or answer 502`];
  if (direct.kind !== 'answer')
    return via.kind === 'error'
      ? []
      : [
          `the client read an answer through baton (${describeAnswer(via)}) from bytes it cannot read straight (${describeAnswer(direct)})`,
        ];
  if (via.kind !== 'answer')
    return [
      `the client could not read the answer through baton (${describeAnswer(via)}), but read it straight (${describeAnswer(direct)})`,
    ];
  const named = new Set(
    direct.headers
      .filter(([n]) => n.toLowerCase() === 'connection')
      .flatMap(([, v]) => v.split(',').map((o) => trimOws(o).toLowerCase())),
  );
  const dateAdded = !direct.headers.some(([n]) => n.toLowerCase() === 'date');
  const ours = { status: via.status, headers: answerHeaders(via, named, dateAdded), body: via.body.toString('latin1') };
  const theirs = {
    status: direct.status,
    headers: answerHeaders(direct, named, dateAdded),
    body: direct.body.toString('latin1'),
  };
  return describe(ours) === describe(theirs)
    ? []
    : [`the answer differs:\n  straight: ${describe(theirs)}\n  through:  ${describe(ours)}`];
}

function describeAnswer(outcome: AnswerOutcome): string {
  if (outcome.kind === 'answer') return `${outcome.status} ${describe(outcome.body.toString('latin1'))}`;
  return outcome.kind === 'error' ? `error ${outcome.code}` : 'no answer';
}
