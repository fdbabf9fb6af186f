import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createSubjectPseudonym } from '../../src/telemetry/subject-pseudonym.ts';

const KEY = 'a-shared-key-of-enough-length';

describe('baton.subject pseudonyms', () => {
  it('gives the same pseudonym for a subject in every process sharing the key', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        (subject) =>
          createSubjectPseudonym({ subjectHashKey: KEY, subjectInClear: false })(subject) ===
          createSubjectPseudonym({ subjectHashKey: KEY, subjectInClear: false })(subject),
      ),
    );
  });

  it('never contains the clear subject, and differs between subjects', () => {
    const pseudonym = createSubjectPseudonym({ subjectHashKey: KEY, subjectInClear: false });
    fc.assert(
      fc.property(fc.string({ minLength: 4 }), fc.string({ minLength: 4 }), (a, b) => {
        assert.match(pseudonym(a), /^hmac:[A-Za-z0-9_-]{22}$/);
        assert.ok(!pseudonym(a).includes(a));
        if (a !== b) assert.notEqual(pseudonym(a), pseudonym(b));
      }),
    );
  });

  it('does not join across processes without a configured key', () => {
    assert.notEqual(
      createSubjectPseudonym({ subjectInClear: false })('alice'),
      createSubjectPseudonym({ subjectInClear: false })('alice'),
    );
    assert.notEqual(createSubjectPseudonym(undefined)('alice'), 'alice');
  });

  it('gives the clear id only when subjectInClear is set', () => {
    assert.equal(createSubjectPseudonym({ subjectHashKey: KEY, subjectInClear: true })('alice'), 'alice');
  });

  it('gives the same sub from two issuers two pseudonyms, and one issuer one pseudonym in every process', () => {
    const pseudonym = createSubjectPseudonym({ subjectHashKey: KEY, subjectInClear: false });
    assert.notEqual(pseudonym('alice', 'https://idp-a.test'), pseudonym('alice', 'https://idp-b.test'));
    assert.notEqual(pseudonym('alice', 'https://idp-a.test'), pseudonym('alice'));
    assert.equal(
      pseudonym('alice', 'https://idp-a.test'),
      createSubjectPseudonym({ subjectHashKey: KEY, subjectInClear: false })('alice', 'https://idp-a.test'),
    );
    // The separator cannot be forged by moving characters between issuer and subject.
    assert.notEqual(pseudonym('b', 'https://idp.test/a'), pseudonym('a/b', 'https://idp.test'));
  });
});
