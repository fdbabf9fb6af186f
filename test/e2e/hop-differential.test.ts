/**
 * The hop-level differential harness (#23). The same client bytes go
 *
 *   (straight)  to a real origin, through a byte-counting wire tap;
 *   (pair)      to sidecar A's outbound port (Host: the lane's service;
 *               Authorization: the user's external IdP token, which A
 *               exchanges at a real `baton sts`), then A → sidecar B's
 *               inbound port → the same tap → the same origin;
 *   (inbound)   to sidecar B's inbound port alone, with a mesh token the
 *               harness exchanged as the gateway: what a misbehaving mesh
 *               peer could send, and the way to B's pooled app connections;
 *   (mTLS pair) the same pair leg through `baton demo`'s mesh in mTLS
 *               (gateway → orders over mutual TLS) to a recorder.
 *
 * Origins (test/dataplane/hop/harness.ts): node:http; a raw-socket recorder
 * that frames requests with RFC 9112 alone (hop/reference-framer.ts, no
 * llhttp) and logs every byte; nginx, one worker, in front of a recorder;
 * haproxy in HTTP mode, one thread, in front of a recorder ("what the origin
 * read" is then what the proxy forwarded). All real processes, all started
 * here on free loopback ports; a missing nginx or haproxy fails, never skips.
 *
 * The oracle, per client connection (hop/verdict.ts): the sequence of
 * messages the origin read through baton must be the one it read straight,
 * request for request, under the normalization below; or baton must refuse
 * (a problem+json answer with a BATON_ code, or a closed connection), having
 * sent nothing upstream beyond the requests the origin read whole before
 * the refusal. Where the straight reading is longer, the reading through
 * baton is a prefix of it; it is never longer, never different, and never
 * leaves bytes of an unfinished head on an upstream connection (the residue
 * a desync leaves for the next request on a pooled connection). Every case
 * ends with bob's innocent request on a new client connection (the canary),
 * so a pooled connection alice left dirty shows on bob's request: bob's
 * connections are read exactly as straight, never refused nor cut short.
 *
 * Normalization — what the pair may change, and nothing else:
 * - hop-by-hop fields (RFC 9110 §7.6.1: Connection, Keep-Alive,
 *   Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 *   Proxy-Authenticate, Proxy-Authorization) and every field a Connection
 *   field names are removed;
 * - framing: Content-Length and Transfer-Encoding are the hop's own; a
 *   chunked body is framed again (chunk extensions and trailer fields
 *   dropped), so what is compared is the framing kind (none, length,
 *   chunked; a zero length is none) and the decoded body bytes;
 * - `baton-*` and `baton_*` are baton's: through baton, exactly one of each
 *   identity header baton writes, `baton-subject` the user whose connection
 *   it is, `baton-caller` the gateway, and no other `baton` field at all;
 * - Authorization is replaced (the app gets none: inbound.forwardToken is
 *   off); Expect is answered by the sidecar and removed; Forwarded,
 *   X-Forwarded-For/-Host/-Proto and X-Real-IP are replaced with the
 *   sidecar's own; the method-override fields (X-HTTP-Method-Override,
 *   X-HTTP-Method, X-Method-Override) are dropped; X-Request-Id is added
 *   when the client sent none, and kept as sent otherwise;
 * - Host becomes the upstream's authority on the pair leg (A dials B by
 *   address); exactly one Host reaches the origin; B keeps the Host value it
 *   got, though not its name's spelling or place: baton writes Host itself,
 *   first, from its own parse (a framing field, src/dataplane/wire.ts);
 * - absolute-form becomes origin-form (RFC 9112 §3.2.2); the request line's
 *   version is the hop's own (baton speaks HTTP/1.1 upstream);
 * - a request baton refused and answered itself (a problem document in its
 *   place among the client's answers, e.g. a 401 mid-pipeline) is not sent
 *   on: the straight reading without it is what is compared;
 * - the last request before a refusal or a cut may be unfinished through
 *   baton (its body a prefix of the straight one): a body streams, and a
 *   malformed chunk after the head is answered by closing the connection;
 * - where the origin itself refuses the client's bytes (its own refusal, or
 *   an origin-side proxy's error answer), baton may send on what RFC 9112
 *   reads in them (hop/reference-framer.ts: strict, with the RFC's MAYs of
 *   a run of spaces in the request line and a bare LF as the empty line
 *   before one), its body cut short at most, and nothing else: a head RFC
 *   9112 refuses never goes upstream (against that reading names compare
 *   without case, Host and the framing kind not at all: a proxy lower-cases
 *   names, sets Host and may frame a body again); and bytes the origin
 *   refused before they were a head, which baton still holds, are not a
 *   dropped request.
 * Everything else — method, target, every other field name (its case
 * included) and value, in order, repeated fields repeated — must be
 * identical. Each answer the client gets through baton must echo the
 * request the origin read for it (method and target, in order) and name
 * the connection's user as `baton-subject`; baton's own refusals aside.
 *
 * The answer direction: the same answer bytes from an app straight to a
 * node:http client, and through the pair and through B: the client reads
 * the same status, end-to-end fields in order (hop-by-hop, framing, and a
 * Date the hop adds to an answer without one aside) and body, or baton's
 * own 502; never waits unanswered; bob's next request gets its own answer.
 *
 * Where the contract says more than "the same or a refusal" (docs/sidecar.md,
 * "HTTP on the wire"), a case says which refusal (`refuse`): its status, its
 * code where the contract names one, and not a byte upstream.
 *
 * Seeded and bounded: the corpus (hop/corpus.ts, each case naming its
 * source), then fast-check mutations of it from a fixed seed; one mesh for
 * everything; every socket wait has a timeout (hop/run.ts); the lanes run
 * side by side. `npm run fuzz` runs the same harness longer, from a random
 * seed it prints (fuzz/hop.ts). Tokens never appear in a message: findings
 * are redacted, and assertions are on codes.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AnswerCase, ANSWER_CASES, type RequestCase, REQUEST_CASES } from '../dataplane/hop/corpus.ts';
import { ANSWER_LANE, type Harness, MTLS_LANE, REQUEST_LANES, startHarness } from '../dataplane/hop/harness.ts';
import { mutatedCases } from '../dataplane/hop/mutations.ts';
import { type CaseResult, type Lane, type Ports, redact, runAnswerCase, runRequestCase } from '../dataplane/hop/run.ts';

const MUTATION_SEED = 23_2026;
/** Cases `npm run fuzz` found and saved (fuzz/hop.ts): replayed until baton is fixed. */
const FUZZ_FINDINGS = fileURLToPath(new URL('../../fuzz/corpus/hop/', import.meta.url));
const MUTATIONS_PER_LANE = 12;

let harness: Harness;
/** One case at a time per lane: a window is everything its lane saw meanwhile, so no two cases share a lane at once. */
const queues = new Map<string, Promise<unknown>>();

function onLane<T>(name: string, work: (lane: Lane, ports: Ports) => Promise<T>): Promise<T> {
  const lane = harness.lanes[name];
  assert.ok(lane !== undefined, name);
  const done = (queues.get(name) ?? Promise.resolve()).then(() => work(lane, harness.ports(name)));
  queues.set(
    name,
    done.catch(() => undefined),
  );
  return done;
}

/** Runs `cases` on every request lane, the lanes side by side, each lane's cases one after another. */
async function onEveryLane(cases: (lane: string, index: number) => readonly RequestCase[]): Promise<CaseResult[]> {
  const results = await Promise.all(
    REQUEST_LANES.map((name, index) =>
      onLane(name, async (lane, ports) => {
        const out: CaseResult[] = [];
        for (const testCase of cases(name, index)) out.push(await runRequestCase(lane, harness.mesh, ports, testCase));
        return out;
      }),
    ),
  );
  return results.flat();
}

const knownBug =
  (cases: ReadonlyArray<RequestCase | AnswerCase>) =>
  (id: string): string | undefined => {
    const known = cases.find((c) => c.id === id)?.known;
    return known === undefined ? undefined : `known bug on main: ${known}`;
  };

/** The findings as one readable, redacted report: by case, then lane, leg and connection. */
function report(results: readonly CaseResult[], note: (id: string) => string | undefined): string {
  const failed = results.filter((r) => r.findings.length > 0);
  const byCase = new Map<string, CaseResult[]>();
  for (const result of failed) byCase.set(result.id, [...(byCase.get(result.id) ?? []), result]);
  const lines = [`${byCase.size} case(s) failed:`];
  for (const [id, list] of byCase) {
    const about = note(id);
    lines.push(`- ${id}${about === undefined ? '' : ` (${about})`}`);
    // What the origin read first (the desync itself), then the contract's refusal; a few per lane.
    const ordered = (result: CaseResult) => [
      ...result.findings.filter((f) => !f.text.startsWith('expected')),
      ...result.findings.filter((f) => f.text.startsWith('expected')),
    ];
    for (const result of list)
      for (const finding of ordered(result).slice(0, 6))
        lines.push(
          `    [${finding.lane} ${finding.leg} connection ${finding.connection}] ${finding.text.replace(/\n/g, '\n      ')}`,
        );
  }
  return redact(lines.join('\n'), [...harness.mesh.secrets(), ...(harness.mtls?.secrets() ?? [])]);
}

// The three runs share the harness and run side by side; the lanes' queues keep their windows apart.
describe(
  'the same bytes straight to real origins and through a real sidecar pair',
  { timeout: 240_000, concurrency: true },
  () => {
    before(async () => {
      harness = await startHarness({ mtls: true });
    });
    after(async () => {
      await harness?.stop();
    });

    it('names a source for every corpus case, and covers each known bug on main', () => {
      for (const testCase of [...REQUEST_CASES, ...ANSWER_CASES]) assert.ok(testCase.source.length > 0, testCase.id);
      assert.equal(new Set(REQUEST_CASES.map((c) => c.id)).size, REQUEST_CASES.length, 'request case ids are unique');
      assert.equal(new Set(ANSWER_CASES.map((c) => c.id)).size, ANSWER_CASES.length, 'answer case ids are unique');
      const known = [...REQUEST_CASES, ...ANSWER_CASES].filter((c) => c.known !== undefined).map((c) => c.id);
      for (const id of [
        'connection-content-length',
        'connection-transfer-encoding',
        'connection-host',
        'connection-content-length-two-users',
        'te-nbsp',
        'host-nbsp',
        'upgrade-websocket',
        'head-many-small-fields',
        'gzip-chunked',
      ])
        assert.ok(known.includes(id), id);
    });

    it('reads every corpus request the same through the pair and through B, or baton refuses it before a byte goes upstream', async () => {
      const results = await onEveryLane(() => REQUEST_CASES);
      const failed = results.filter((r) => r.findings.length > 0);
      assert.equal(failed.length, 0, report(results, knownBug(REQUEST_CASES)));
    });

    it('reads every corpus request the same through an mTLS pair (the demo mesh: gateway → orders over mutual TLS), or refuses it', async () => {
      const mtls = harness.mtls;
      assert.ok(mtls !== undefined);
      const results = await onLane(MTLS_LANE, async (lane, ports) => {
        const out: CaseResult[] = [];
        for (const testCase of REQUEST_CASES)
          out.push(await runRequestCase(lane, mtls.tokens, ports, testCase, undefined, ['pair']));
        return out;
      });
      assert.equal(results.filter((r) => r.findings.length > 0).length, 0, report(results, knownBug(REQUEST_CASES)));
    });

    it('passes every corpus answer to the client as it came, or answers 502, and never leaves the client waiting', async () => {
      const results = await onLane(ANSWER_LANE, async (lane, ports) => {
        const out: CaseResult[] = [];
        for (const testCase of ANSWER_CASES) out.push(await runAnswerCase(lane, harness.mesh, ports, testCase));
        return out;
      });
      const failed = results.filter((r) => r.findings.length > 0);
      assert.equal(failed.length, 0, report(results, knownBug(ANSWER_CASES)));
    });

    it('replays every hop finding npm run fuzz saved, on the lane it was found on', async () => {
      const saved = existsSync(FUZZ_FINDINGS)
        ? readdirSync(FUZZ_FINDINGS)
            .filter((name) => name.endsWith('.json'))
            .sort()
        : [];
      const cases = saved.map(
        (name) => JSON.parse(readFileSync(join(FUZZ_FINDINGS, name), 'utf8')) as RequestCase & { lane: string },
      );
      const results = await onEveryLane((lane) => cases.filter((c) => c.lane === lane));
      assert.equal(
        results.filter((r) => r.findings.length > 0).length,
        0,
        report(results, (id) => cases.find((c) => c.id === id)?.source),
      );
    });

    it(`agrees on ${MUTATIONS_PER_LANE} seeded mutations of the corpus per lane (seed ${MUTATION_SEED})`, async () => {
      // Each lane draws its own mutations (seed + the lane's index).
      const mutated = REQUEST_LANES.map((_, index) =>
        mutatedCases(REQUEST_CASES, MUTATION_SEED + index, MUTATIONS_PER_LANE),
      );
      const results = await onEveryLane((_, index) => mutated[index] ?? []);
      assert.equal(
        results.filter((r) => r.findings.length > 0).length,
        0,
        report(results, (id) => mutated.flat().find((c) => c.id === id)?.source),
      );
    });
  },
);
