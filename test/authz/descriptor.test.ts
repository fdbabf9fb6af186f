/**
 * The descriptor `baton authz` serves Envoy's API from is what the vendored
 * official protos compile to (scripts/ext-authz-descriptor.ts), and the
 * vendored files carry their licences and provenance.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileDescriptor, DESCRIPTOR_FILE, VENDOR_DIR } from '../../scripts/ext-authz-descriptor.ts';

describe('the Envoy ext_authz descriptor', () => {
  it('is what the vendored protos compile to: run node scripts/ext-authz-descriptor.ts after changing them', () => {
    assert.equal(readFileSync(DESCRIPTOR_FILE, 'utf8'), compileDescriptor());
  });

  it("vendors each source repository's licence and names the commit each file came from", () => {
    for (const licence of ['envoyproxy-data-plane-api', 'cncf-xds', 'protoc-gen-validate', 'googleapis']) {
      assert.match(
        readFileSync(join(VENDOR_DIR, 'licenses', `${licence}.LICENSE`), 'utf8'),
        /Apache License\s+Version 2\.0/,
        licence,
      );
    }
    const readme = readFileSync(join(VENDOR_DIR, 'README.md'), 'utf8');
    for (const repository of [
      'envoyproxy/data-plane-api',
      'cncf/xds',
      'bufbuild/protoc-gen-validate',
      'googleapis/googleapis',
    ])
      assert.match(readme, new RegExp(`${repository}[^\\n]*[0-9a-f]{40}`), repository);
    assert.ok(existsSync(join(VENDOR_DIR, 'envoy/service/auth/v3/external_auth.proto')));
  });
});
