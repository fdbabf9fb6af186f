import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BATON_VERSION } from '../../src/core/version.ts';

describe('the baton version', () => {
  it('is the version package.json declares, so build_info, service.version and --version tell the truth', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(BATON_VERSION, pkg.version);
  });
});
