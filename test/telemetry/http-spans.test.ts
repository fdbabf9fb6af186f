import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { Attributes } from '@opentelemetry/api';
import { tracing } from '@opentelemetry/sdk-node';
import { endpointOf, fullUrl, redactQuery, startEgressSpan } from '../../src/telemetry/http-spans.ts';

describe('URLs in spans', () => {
  it('keeps query names and replaces every value with REDACTED: any value may be a token', () => {
    assert.equal(
      redactQuery('color=blue&access_token=eyJhbGciOiJub25lIn0.e30.'),
      'color=REDACTED&access_token=REDACTED',
    );
    assert.equal(redactQuery('a=&b=%41=x'), 'a=REDACTED&b=REDACTED');
  });

  it('replaces a query component without a name whole, and keeps empty components', () => {
    assert.equal(redactQuery('eyJhbGciOiJub25lIn0.e30.'), 'REDACTED');
    assert.equal(redactQuery('a=1&&b'), 'a=REDACTED&&REDACTED');
    assert.equal(redactQuery(''), '');
  });

  it('builds url.full from the upstream origin and the origin-form target, query values redacted, fragment dropped', () => {
    assert.equal(fullUrl('http://payments:7070', '/charges'), 'http://payments:7070/charges');
    assert.equal(
      fullUrl('http://payments:7070', '/charges?id=42&sig=abc'),
      'http://payments:7070/charges?id=REDACTED&sig=REDACTED',
    );
    assert.equal(fullUrl('http://payments:7070', '/charges?'), 'http://payments:7070/charges?');
    assert.equal(fullUrl('http://payments:7070', '/charges?id=42#top'), 'http://payments:7070/charges?id=REDACTED');
  });

  it("names the server of a URL without IPv6 brackets, on the scheme's port when the URL names none", () => {
    assert.deepEqual(endpointOf(new URL('http://[::1]:7070/x')), {
      scheme: 'http',
      host: '::1',
      port: 7070,
      origin: 'http://[::1]:7070',
    });
    assert.deepEqual(endpointOf(new URL('https://baton-sts.baton-system.svc/token')), {
      scheme: 'https',
      host: 'baton-sts.baton-system.svc',
      port: 443,
      origin: 'https://baton-sts.baton-system.svc',
    });
  });

  it("gives the sampler an egress span's target at creation: baton.target, url.full, server.address, server.port", () => {
    const seen: Attributes[] = [];
    const sampler: tracing.Sampler = {
      shouldSample: (_context, _traceId, _name, _kind, attributes) => {
        seen.push({ ...attributes });
        return { decision: tracing.SamplingDecision.RECORD_AND_SAMPLED };
      },
      toString: () => 'recording',
    };
    const tracer = new tracing.BasicTracerProvider({ sampler }).getTracer('test');
    const req = { method: 'POST', headers: {} } as IncomingMessage;
    startEgressSpan(tracer, req, {
      service: 'payments',
      upstream: endpointOf(new URL('http://payments:7070')),
      target: '/charges?id=42',
    }).span.end();
    startEgressSpan(tracer, req, undefined).span.end();
    assert.deepEqual(seen[0], {
      'http.request.method': 'POST',
      'baton.target': 'payments',
      'server.address': 'payments',
      'server.port': 7070,
      'url.scheme': 'http',
      'url.path': '/charges',
      'url.full': 'http://payments:7070/charges?id=REDACTED',
      'network.protocol.version': '1.1',
    });
    // A request the outbound port refuses before it has a target: the method alone.
    assert.deepEqual(seen[1], { 'http.request.method': 'POST' });
  });
});
