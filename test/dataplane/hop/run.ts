/**
 * Runs hop-harness cases: each client connection of a case (then a canary,
 * bob's innocent request) is sent straight to a lane's origin, then through
 * the sidecar pair (A's outbound port), then to B's inbound port alone, one
 * connection at a time; each connection's "window" collects what the client
 * read and what the origin read meanwhile (./verdict.ts compares them).
 *
 * Every wait is bounded: a connection is done when it closed, when it got
 * the answers it expects, when nothing has moved on either end for a quiet
 * period, or at a cap; then the lane must be still for a moment, so that
 * anything a request set off upstream lands in its own window.
 */
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { AUTH, type AnswerCase, type ConnectionScript, HOST, type RequestCase, request } from './corpus.ts';
import type { HopMesh, User } from './mesh.ts';
import type { Origin, WireTap } from './origins.ts';
import { batonRefusalOf, readResponses } from './response-reader.ts';
import {
  type AnswerOutcome,
  compareAnswers,
  compareWindows,
  type Leg,
  referenceReading,
  type Window,
} from './verdict.ts';

/** One origin and the way to it: its service name (B's, and the Host the client names), what it read, the tap in front. */
export interface Lane {
  readonly name: string;
  readonly origin: Origin;
  readonly tap: WireTap;
  /** The origin reads the tap's connections itself (no proxy between): each client connection is one of its own. */
  readonly direct: boolean;
}

export interface Timing {
  /** How long nothing may move before a connection straight to the origin is done. */
  readonly directQuietMs: number;
  /** The same through baton (an exchange at the STS takes a moment). */
  readonly viaQuietMs: number;
  /** How long the lane must be still after a connection before its window closes. */
  readonly settleMs: number;
  /** The same after baton closed a connection without an answer: what it sent on before may still be inside B. */
  readonly cutSettleMs: number;
  /**
   * The same on a lane with a proxy between the tap and the origin (nginx, haproxy): the proxy may pass on an
   * aborted request's head after the tap went quiet, and on a busy machine well after (seen: haproxy on 2 busy cores).
   */
  readonly proxyCutSettleMs: number;
  /** The longest a connection is given. */
  readonly capMs: number;
  /** The longest a client waits for an answer (answer cases). */
  readonly answerMs: number;
}

export const TIMING: Timing = {
  directQuietMs: 80,
  viaQuietMs: 300,
  settleMs: 15,
  cutSettleMs: 50,
  proxyCutSettleMs: 200,
  capMs: 4_000,
  answerMs: 2_000,
};

export interface Finding {
  readonly lane: string;
  readonly leg: Leg;
  readonly connection: number;
  readonly text: string;
}

export interface CaseResult {
  readonly id: string;
  readonly lane: string;
  readonly findings: readonly Finding[];
}

/** bob's innocent request after every case: it must reach the origin as bob's, intact. */
export function canary(id: string): ConnectionScript {
  return {
    user: 'bob',
    innocent: true,
    writes: [request(`GET /canary/${encodeURIComponent(id)} HTTP/1.1`, ['X-Canary: 1'])],
    expect: 1,
  };
}

export function bytesOf(template: string, token: string, host: string): Buffer {
  return Buffer.from(template.replaceAll(AUTH, token).replaceAll(HOST, host), 'latin1');
}

const lastMove = (lane: Lane, client: number): number =>
  Math.max(client, lane.tap.lastActivity(), lane.origin.lastActivity());

/** Waits until nothing has moved on the lane (nor on the client, since `client`) for `quietMs`, at most 20 times that. */
async function settle(lane: Lane, quietMs: number, client = 0): Promise<void> {
  const deadline = performance.now() + 20 * quietMs;
  while (performance.now() - lastMove(lane, client) < quietMs && performance.now() < deadline) await delay(2);
}

/** One client connection to `port`: writes, waits (bounded), and returns the window. */
export async function driveWindow(
  lane: Lane,
  port: number,
  user: User,
  writes: ReadonlyArray<Buffer | number>,
  options: {
    expect: number | undefined;
    heads?: readonly number[] | undefined;
    quietMs: number;
    straight: boolean;
    innocent?: boolean;
  },
  timing: Timing,
): Promise<Window> {
  // The window before this one closed on a still lane (below): everything from here on is this window's.
  const originMark = lane.origin.mark();
  const tapMark = lane.tap.bytesIn();
  const fenceMark = fenceBytes(lane);
  const chunks: Buffer[] = [];
  let closed = false;
  let moved = performance.now();
  const socket: Socket = connect({ host: '127.0.0.1', port, noDelay: true });
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    moved = performance.now();
  });
  socket.on('close', () => {
    closed = true;
    moved = performance.now();
  });
  const heads = (index: number): boolean => options.heads?.includes(index) === true;
  try {
    const connected = await Promise.race([
      new Promise<boolean>((resolve) =>
        socket.once('connect', () => resolve(true)).once('close', () => resolve(false)),
      ),
      delay(2_000, false),
    ]);
    if (!connected) throw new Error(`could not connect to port ${port} for ${lane.name}`);
    for (const write of writes) {
      if (typeof write === 'number') await delay(write);
      else if (!socket.destroyed) socket.write(write);
      moved = performance.now();
    }
    const started = performance.now();
    let answered = false;
    for (;;) {
      if (closed) break;
      const { responses } = readResponses(Buffer.concat(chunks), { closed: false, heads });
      if (options.expect !== undefined && responses.length >= options.expect) {
        answered = true;
        break;
      }
      const now = performance.now();
      if (now - started > timing.capMs) break;
      // Through baton, and for an innocent connection on any leg (it is always answered), a connection that expects
      // answers waits for them (or a close, or the cap), never for mere quiet: a first request's token exchange, or a
      // proxy on a busy machine, can be still for longer than any quiet period, and its request would then land in the
      // next window.
      const waitsForAnswers = options.expect !== undefined && (!options.straight || options.innocent === true);
      if (now - lastMove(lane, moved) > options.quietMs && !waitsForAnswers) break;
      await delay(5);
    }
    // Answered: the origin read what it answered before answering. Cut short through baton: a head baton sent on may
    // still be on its way through B (invisible here), so the lane is given longer to show it.
    const cutShort =
      !options.straight &&
      closed &&
      !readResponses(Buffer.concat(chunks), { closed, heads }).responses.some((r) => batonRefusalOf(r) !== undefined);
    await settle(
      lane,
      answered
        ? timing.settleMs / 3
        : cutShort
          ? lane.direct
            ? timing.cutSettleMs
            : timing.proxyCutSettleMs
          : timing.settleMs,
      moved,
    );
    // Not answered, on a lane with a proxy in front of the origin: the proxy may still hold what it was sent, for longer
    // than any quiet period on a busy machine. A fence request through the same proxy is read after what it holds.
    if (!answered && !lane.direct) await fence(lane, timing);
    const reading = readResponses(Buffer.concat(chunks), { closed, heads });
    const sent = Buffer.concat(writes.filter((w): w is Buffer => typeof w !== 'number'));
    const events = lane.origin
      .snapshot(originMark, options.straight && lane.direct)
      .filter((e) => !(e.kind === 'request' && e.target.startsWith(FENCE_PATH)));
    return {
      user,
      sent,
      responses: reading.responses,
      garbled: reading.garbled,
      closed,
      events,
      bytesUpstream: lane.tap.bytesIn() - tapMark - (fenceBytes(lane) - fenceMark),
    };
  } finally {
    socket.destroy();
  }
}

/** Requests the harness sends itself to order a proxy's queue; never part of a window. */
const FENCE_PATH = '/__hop_fence__';
const fenced = new WeakMap<Lane, number>();
const fenceBytes = (lane: Lane): number => fenced.get(lane) ?? 0;

/**
 * One GET through the lane's tap and proxy to its origin, answered (or the cap): the proxy reads and passes on its
 * connections in order, so once the fence is answered whatever the proxy held from the window has reached the origin.
 */
async function fence(lane: Lane, timing: Timing): Promise<void> {
  const bytes = Buffer.from(`GET ${FENCE_PATH} HTTP/1.1\r\nHost: fence\r\nConnection: close\r\n\r\n`, 'latin1');
  fenced.set(lane, fenceBytes(lane) + bytes.length);
  await new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: lane.tap.port, noDelay: true });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, timing.capMs);
    socket.on('error', done);
    socket.on('data', done);
    socket.on('close', done);
    socket.on('connect', () => socket.write(bytes));
  });
  await settle(lane, timing.settleMs);
}

export interface Ports {
  /** Sidecar A's outbound port. */
  readonly pair: number;
  /** This lane's sidecar B inbound port. */
  readonly inbound: number;
}

/** Where the tokens come from: the users' tokens for A, and mesh tokens for B (the inbound leg). */
export type Tokens = Pick<HopMesh, 'userToken' | 'meshToken'>;

/** A request case on one lane: every connection straight, through the pair, through B alone (`legs`); then the verdicts. */
export async function runRequestCase(
  lane: Lane,
  mesh: Tokens,
  ports: Ports,
  testCase: RequestCase,
  timing: Timing = TIMING,
  legs: readonly Leg[] = ['pair', 'inbound'],
): Promise<CaseResult> {
  const scripts = [...testCase.connections, canary(testCase.id)];
  const writesOf = (script: ConnectionScript, token: string): Array<Buffer | number> =>
    script.writes.map((w) => (typeof w === 'number' ? w : bytesOf(w, token, lane.name)));
  // Which answers have no body: those to HEAD requests, by the case or by RFC 9112's reading of what is sent.
  const headsOf = (script: ConnectionScript): readonly number[] =>
    script.heads ??
    referenceReading(
      bytesOf(script.writes.filter((w): w is string => typeof w === 'string').join(''), 'token', lane.name),
    ).flatMap((m, i) => (m.kind === 'request' && m.method === 'HEAD' ? [i] : []));
  const direct: Window[] = [];
  for (const script of scripts)
    direct.push(
      await driveWindow(
        lane,
        lane.tap.port,
        script.user,
        writesOf(script, mesh.userToken(script.user)),
        {
          expect: script.expect === 0 ? undefined : script.expect,
          heads: headsOf(script),
          quietMs: timing.directQuietMs,
          straight: true,
          innocent: script.innocent === true,
        },
        timing,
      ),
    );
  const findings: Finding[] = [];
  for (const leg of legs) {
    for (const [index, script] of scripts.entries()) {
      const token = leg === 'pair' ? mesh.userToken(script.user) : await mesh.meshToken(script.user, lane.name);
      const straight = direct[index] as Window;
      const expect = straight.responses.length > 0 ? straight.responses.length : undefined;
      const via = await driveWindow(
        lane,
        leg === 'pair' ? ports.pair : ports.inbound,
        script.user,
        writesOf(script, token),
        { expect, heads: headsOf(script), quietMs: timing.viaQuietMs, straight: false },
        timing,
      );
      for (const text of compareWindows(straight, via, script.refuse, leg, script.innocent === true))
        findings.push({ lane: lane.name, leg, connection: index, text });
    }
  }
  return { id: testCase.id, lane: lane.name, findings };
}

/** What a node:http client reads of one answer, waiting at most `ms`. */
export function fetchAnswer(
  port: number,
  path: string,
  headers: Record<string, string>,
  method: 'GET' | 'HEAD',
  ms: number,
): Promise<AnswerOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: AnswerOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      resolve(outcome);
    };
    const client = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (chunk: Buffer) => parts.push(chunk));
      response.on('end', () => {
        const fields: Array<readonly [string, string]> = [];
        for (let i = 0; i + 1 < response.rawHeaders.length; i += 2)
          fields.push([response.rawHeaders[i] as string, response.rawHeaders[i + 1] as string]);
        done({ kind: 'answer', status: response.statusCode ?? 0, headers: fields, body: Buffer.concat(parts) });
      });
      response.on('error', (error: NodeJS.ErrnoException) =>
        done({ kind: 'error', code: error.code ?? error.message }),
      );
      response.on('aborted', () => done({ kind: 'error', code: 'aborted' }));
    });
    client.on('error', (error: NodeJS.ErrnoException) => done({ kind: 'error', code: error.code ?? error.message }));
    const timer = setTimeout(() => done({ kind: 'hang' }), ms);
    client.end();
  });
}

/** An answer case: the app's bytes to a client straight, through the pair and through B; then bob's canary on each way. */
export async function runAnswerCase(
  lane: Lane,
  mesh: HopMesh,
  ports: Ports,
  testCase: AnswerCase,
  timing: Timing = TIMING,
): Promise<CaseResult> {
  const path = `/answer/${testCase.id}`;
  const method = testCase.method ?? 'GET';
  const direct = await fetchAnswer(lane.tap.port, path, { host: lane.name }, method, timing.answerMs);
  const findings: Finding[] = [];
  for (const leg of ['pair', 'inbound'] as const) {
    const port = leg === 'pair' ? ports.pair : ports.inbound;
    const auth = async (user: User): Promise<string> =>
      `Bearer ${leg === 'pair' ? mesh.userToken(user) : await mesh.meshToken(user, lane.name)}`;
    const via = await fetchAnswer(
      port,
      path,
      { host: lane.name, authorization: await auth('alice') },
      method,
      timing.answerMs,
    );
    for (const text of compareAnswers(direct, via, testCase.refuse))
      findings.push({ lane: lane.name, leg, connection: 0, text });
    const canaryPath = `/canary/${testCase.id}`;
    const after = await fetchAnswer(
      port,
      canaryPath,
      { host: lane.name, authorization: await auth('bob') },
      'GET',
      timing.answerMs,
    );
    const echo = after.kind === 'answer' ? after.body.toString('latin1') : undefined;
    if (
      after.kind !== 'answer' ||
      after.status !== 200 ||
      echo !== JSON.stringify({ method: 'GET', target: canaryPath, subject: 'bob' })
    ) {
      findings.push({
        lane: lane.name,
        leg,
        connection: 1,
        text: `bob's next request did not get its own answer: ${after.kind === 'answer' ? `${after.status} ${echo}` : after.kind === 'error' ? `error ${after.code}` : 'no answer'}`,
      });
    }
  }
  return { id: testCase.id, lane: lane.name, findings };
}

/** A finding's text with every token and context handle replaced: no message carries a credential. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.replaceAll(secret, '<token>');
  // Anything shaped like a JWS (whole, or cut short by a message) or a baton-context handle that slipped through.
  return out.replace(/eyJ[\w-]*(?:\.[\w-]*)*/g, '<token>').replace(/bctx_[\w-]+/g, '<handle>');
}
