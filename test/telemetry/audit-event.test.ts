import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { CompiledPolicy, DecisionInput } from '../../src/policy/language/decision.ts';
import { checkSidecarEdge, type EdgeContext } from '../../src/sidecar/edge-check.ts';
import { createSidecarMetrics } from '../../src/sidecar/metrics.ts';
import type { HttpError } from '../../src/core/errors.ts';
import { tokenEndpointStatus } from '../../src/sts/errors.ts';
import { gateTokenRequest } from '../../src/sts/grants/policy-gate.ts';
import {
  AUDIT_SCHEMA,
  type AuditEvent,
  type AuditEventName,
  ENVELOPE_KEYS,
  parseAuditLine,
  type StsGrantAudit,
  writeAuditEvent,
} from '../../src/telemetry/audit-event.ts';
import type { Logger } from 'pino';
import { createLogger, REDACT_PATHS } from '../../src/telemetry/logger.ts';
import { auditLinesOf } from '../helpers/audit-lines.ts';
import { callGraph, compileTestPolicy } from '../helpers/policy.ts';

/** A real pino logger (baton's settings) writing into memory. */
function bufferLogger(name: string): { logger: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ name, level: 'info', destination });
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== ''),
  };
}

type Full<N extends AuditEventName> = Required<Extract<AuditEvent, { event: N }>>;

const GRANT: Required<StsGrantAudit> = {
  grant: 'token-exchange',
  client: 'orders',
  target: 'payments',
  chain: ['gateway', 'orders'],
  subjectKind: 'mesh',
  issuer: 'https://sts.example.test',
  subjectIssuer: 'https://idp.example.test',
  txn: 'txn-0123456789',
  policyVersion: 7,
};

/** One line of every variant, every field set: a variant or field without a sample fails to compile. */
const SAMPLES: { readonly [N in AuditEventName]: Full<N> } = {
  decision: {
    event: 'decision',
    component: 'sidecar',
    direction: 'inbound',
    subject: 'alice',
    subjectIssuer: 'https://idp.example.test',
    chain: ['gateway', 'orders'],
    target: 'payments',
    method: 'POST',
    path: '/charges',
    user: true,
    scopes: ['payments:charge'],
    acr: 'urn:baton:acr:mfa',
    rule: 'payments.accepts.charge',
    decision: 'deny',
    cause: 'scope',
    status: 403,
    txn: 'txn-0123456789',
    request: 'Kq3v0iWm1xYp9bTz',
    policyVersion: 7,
    peer: 'spiffe://mesh.test/ns/shop/sa/orders',
    bound: true,
  },
  request_failed: {
    event: 'request_failed',
    component: 'sidecar',
    direction: 'outbound',
    code: 'BATON_UPSTREAM_UNREACHABLE',
    reason: 'ECONNREFUSED',
    status: 502,
    method: 'POST',
  },
  token_decision: {
    ...GRANT,
    event: 'token_decision',
    component: 'sts',
    rule: 'payments.accepts.charge',
    decision: 'deny',
    cause: 'no_edge',
    reason: 'no rule lets orders call payments',
    status: 400,
    error: 'invalid_target',
  },
  token_issued: {
    ...GRANT,
    event: 'token_issued',
    component: 'sts',
    rule: 'payments.accepts.charge',
    decision: 'would_deny',
    cause: 'scope',
    scope: 'payments:charge',
    exp: 1_800_000_000,
    jti: 'jti-1',
    status: 200,
  },
  token_refused: {
    event: 'token_refused',
    component: 'sts',
    code: 'BATON_STS_INVALID_CLIENT',
    reason: 'signature',
    status: 401,
    error: 'invalid_client',
    path: '/token',
  },
};

const NAMES = Object.keys(AUDIT_SCHEMA) as AuditEventName[];

describe('audit event: one schema, one writer, one parser', () => {
  it('reads back every variant the writer wrote through a real pino logger, field for field', () => {
    const { logger, lines } = bufferLogger('payments');
    for (const name of NAMES) writeAuditEvent(logger, SAMPLES[name]);
    const written = lines();
    assert.equal(written.length, NAMES.length);
    for (const [i, name] of NAMES.entries()) {
      const line = parseAuditLine(written[i] as string);
      assert.ok(line !== undefined, `${name} did not parse`);
      assert.deepEqual(line.audit, SAMPLES[name]);
      assert.equal(line.service, 'payments');
      assert.equal(typeof line.time, 'number');
    }
  });

  it('writes no key the parser does not read, and the parser reads every key the writer writes', () => {
    const { logger, lines } = bufferLogger('payments');
    for (const name of NAMES) {
      writeAuditEvent(logger, SAMPLES[name]);
      const keys = Object.keys(JSON.parse(lines().at(-1) as string) as object).filter((k) => !ENVELOPE_KEYS.has(k));
      assert.deepEqual(new Set(keys), new Set(['event', 'component', ...Object.keys(AUDIT_SCHEMA[name].fields)]), name);
    }
  });

  it('refuses a line whose field has the wrong type, for every field of every variant', () => {
    for (const name of NAMES) {
      for (const key of Object.keys(AUDIT_SCHEMA[name].fields)) {
        const line = JSON.stringify({
          time: '2026-01-01T00:00:00.000Z',
          service: 'x',
          ...SAMPLES[name],
          [key]: { wrong: true },
        });
        assert.equal(parseAuditLine(line), undefined, `${name}.${key}`);
      }
    }
  });

  it("writes, for every variant, the very line pino writes for the same event (time aside), with the logger's bindings and trace ids", () => {
    const capture = (): { logger: Logger; lines: string[] } => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(
            ...chunk
              .toString()
              .split('\n')
              .filter((l) => l !== ''),
          );
          done();
        },
      });
      return {
        logger: createLogger({ name: 'payments', destination: destination as never }).child({ part: 'inbound' }),
        lines,
      };
    };
    const ours = capture();
    const pinos = capture();
    const withoutTime = (line: string): string => line.replace(/"time":"[^"]+"/, '"time":""');
    for (const name of NAMES) {
      writeAuditEvent(ours.logger, SAMPLES[name] as AuditEvent);
      const warn = name === 'request_failed';
      const unredacted = pinos.logger.child({}, { redact: [] });
      (warn ? unredacted.warn.bind(unredacted) : unredacted.info.bind(unredacted))(
        SAMPLES[name],
        JSON.parse(ours.lines.at(-1) as string).msg,
      );
    }
    assert.equal(ours.lines.length, NAMES.length);
    assert.deepEqual(ours.lines.map(withoutTime), pinos.lines.map(withoutTime));
  });

  it('has no field the log redaction would censor, so writing it unredacted hides nothing (audit-event.ts writeEventLine)', () => {
    // The leaf names pino censors anywhere: `token`, `authorization`, `client_secret`, ….
    const censored = new Set(REDACT_PATHS.map((path) => path.replace(/^.*[.[]"?|"?\]$/g, '')));
    for (const [name, variant] of Object.entries(AUDIT_SCHEMA)) {
      for (const key of [...Object.keys(variant.fields), ...ENVELOPE_KEYS])
        assert.ok(!censored.has(key), `${name}.${key} is a key the redaction censors`);
    }
    assert.ok(
      censored.has('token') && censored.has('authorization') && censored.has('proxy-authorization'),
      'the leaf names were read off REDACT_PATHS',
    );
  });

  it('refuses a line that names another component than its event belongs to, or no writer', () => {
    const base = { time: '2026-01-01T00:00:00.000Z', service: 'x' };
    assert.equal(parseAuditLine(JSON.stringify({ ...base, ...SAMPLES.decision, component: 'sts' })), undefined);
    assert.equal(parseAuditLine(JSON.stringify({ ...SAMPLES.decision })), undefined);
    assert.equal(parseAuditLine(JSON.stringify({ ...base, event: 'policy_updated', policyVersion: 3 })), undefined);
  });

  it('reads a sidecar decision written before component and status existed, inventing neither', () => {
    const { component: _component, status: _status, ...old } = SAMPLES.decision;
    const line = parseAuditLine(JSON.stringify({ time: 1, service: 'payments', ...old }));
    assert.equal(line?.audit.component, 'sidecar');
    assert.equal(line?.audit.event === 'decision' ? line.audit.status : 'wrong variant', undefined);
  });
});

const POLICY: CompiledPolicy = compileTestPolicy(
  callGraph(
    `
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway }
payments:
  accepts:
    - { name: charge, from: orders, acr: [urn:baton:acr:mfa] }
audit:
  accepts:
    - { name: shadowed, from: orders, scopes: "audit:read", mode: shadow }
`,
    { name: 'shop' },
  ),
);

describe('the real writers write what the parser reads', () => {
  const input = (target: string, chain: string[]): DecisionInput => ({
    chain,
    target,
    method: 'POST',
    path: '/x',
    scopes: new Set(),
    user: true,
    subjectIssuer: 'https://idp.example.test',
  });

  it('checkSidecarEdge: allow, would_deny, deny (403) and step-up (401), each with the status the caller got', () => {
    const { logger, lines } = bufferLogger('orders');
    const context: EdgeContext = {
      direction: 'outbound',
      service: 'orders',
      subject: 'alice',
      txn: 't',
      request: 'Kq3v0iWm1xYp9bTz',
      policyVersion: 4,
      logger,
      metrics: createSidecarMetrics(),
    };
    checkSidecarEdge(POLICY, input('orders', ['gateway']), { ...context, direction: 'inbound' });
    checkSidecarEdge(POLICY, input('audit', ['gateway', 'orders']), context);
    const denied = (() => {
      try {
        checkSidecarEdge(POLICY, input('payments', ['gateway']), context);
      } catch (error) {
        return error as { code: string; status: number };
      }
    })();
    const stepUp = (() => {
      try {
        checkSidecarEdge(POLICY, input('payments', ['gateway', 'orders']), context);
      } catch (error) {
        return error as { code: string; status: number };
      }
    })();
    assert.equal(denied?.status, 403);
    assert.equal(stepUp?.status, 401);
    const parsed = auditLinesOf(lines().join('\n'));
    assert.deepEqual(
      parsed.map((l) =>
        l.audit.event === 'decision'
          ? [l.audit.direction, l.audit.decision, l.audit.status, l.audit.policyVersion]
          : l.audit.event,
      ),
      [
        ['inbound', 'allow', undefined, 4],
        ['outbound', 'would_deny', undefined, 4],
        ['outbound', 'deny', 403, 4],
        ['outbound', 'deny', 401, 4],
      ],
    );
  });

  it('gateTokenRequest: deny with the status and OAuth error the client gets, would_deny in shadow mode, the depth cap', () => {
    const { logger, lines } = bufferLogger('baton-sts');
    const audit = (target: string, chain: string[]): StsGrantAudit => ({
      grant: 'token-exchange',
      client: chain.at(-1) as string,
      target,
      chain,
      txn: 't',
      policyVersion: 9,
    });
    assert.throws(
      () => gateTokenRequest(POLICY, input('payments', ['gateway']), undefined, logger, audit('payments', ['gateway'])),
      (error: HttpError) => tokenEndpointStatus(error) === 400,
    );
    gateTokenRequest(
      POLICY,
      input('audit', ['gateway', 'orders']),
      undefined,
      logger,
      audit('audit', ['gateway', 'orders']),
    );
    assert.throws(() =>
      gateTokenRequest(POLICY, input('orders', ['gateway']), 0, logger, audit('orders', ['gateway'])),
    );
    gateTokenRequest(POLICY, input('orders', ['gateway']), undefined, logger, audit('orders', ['gateway']));
    const parsed = auditLinesOf(lines().join('\n'));
    assert.deepEqual(
      parsed.map((l) =>
        l.audit.event === 'token_decision'
          ? [l.audit.component, l.audit.decision, l.audit.cause, l.audit.status, l.audit.error, l.audit.policyVersion]
          : l.audit.event,
      ),
      [
        ['sts', 'deny', 'no_edge', 400, 'invalid_target', 9],
        ['sts', 'would_deny', 'scope', undefined, undefined, 9],
        ['sts', 'deny', 'depth_exceeded', 400, 'invalid_target', 9],
      ],
    );
  });
});

describe('audit lines with hostile strings (#28)', () => {
  // Request-controlled text reaches the line (path, method); each of these must leave one valid JSON line.
  const HOSTILE = [
    'a"b',
    'back\\slash',
    'new\nline',
    'carriage\rreturn',
    'tab\t',
    'nul\u0000',
    'bell\u0007',
    'ls\u2028ps\u2029',
    'lone\ud800high',
    'lone\udc00low',
    'é ☃ 𝄞',
    '</script>',
  ];

  for (const hostile of HOSTILE) {
    it(`writes ${JSON.stringify(hostile)} as one line of valid JSON that reads back unchanged`, () => {
      const { logger, lines } = bufferLogger('payments');
      writeAuditEvent(logger, {
        event: 'decision',
        component: 'sidecar',
        direction: 'inbound',
        chain: [hostile],
        target: 'payments',
        method: hostile,
        path: `/${hostile}`,
        rule: 'r',
        decision: 'allow',
      });
      const written = lines();
      assert.equal(written.length, 1, 'one line, whatever the string holds');
      const record = JSON.parse(written[0] as string) as Record<string, unknown>;
      assert.equal(record.path, `/${hostile}`);
      assert.equal(record.method, hostile);
      assert.deepEqual(record.chain, [hostile]);
      const parsed = parseAuditLine(written[0] as string);
      assert.equal(parsed?.audit.event === 'decision' ? parsed.audit.path : undefined, `/${hostile}`);
    });
  }

  it('escapes line terminators and lone surrogates, so no reader splits or rejects the line', () => {
    const { logger, lines } = bufferLogger('payments');
    writeAuditEvent(logger, {
      event: 'decision',
      component: 'sidecar',
      direction: 'inbound',
      chain: [],
      target: 'payments',
      path: '/\n\r\ud800',
      rule: 'r',
      decision: 'allow',
    });
    const line = lines()[0] as string;
    assert.doesNotMatch(line, /[\n\r]/);
    assert.ok(line.isWellFormed(), 'no lone surrogate in the text written');
  });
});
