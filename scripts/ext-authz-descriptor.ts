/**
 * Compiles the vendored Envoy protos (vendor/envoy-ext-authz/, see its
 * README) into the JSON descriptor `baton authz` serves
 * `envoy.service.auth.v3.Authorization` from
 * (src/authz/ext-authz.descriptor.json). The descriptor travels inside the
 * bundle like any module, so neither dist/ nor the image carries .proto
 * files, and the sources and the bundle load the same bytes.
 * test/authz/descriptor.test.ts fails when the committed descriptor is not
 * what the vendored protos compile to.
 *
 *   node scripts/ext-authz-descriptor.ts          rewrite the descriptor
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Protobuf from 'protobufjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const VENDOR_DIR = join(ROOT, 'vendor/envoy-ext-authz');
export const DESCRIPTOR_FILE = join(ROOT, 'src/authz/ext-authz.descriptor.json');
/** The service's file; everything else is its imports. */
export const EXT_AUTHZ_PROTO = 'envoy/service/auth/v3/external_auth.proto';

// protobufjs is @grpc/proto-loader's own parser: resolved through it, so the version that compiles is the one that loads.
const protobuf = createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'))(
  'protobufjs',
) as typeof Protobuf;

/** The descriptor as the text it is committed as. */
export function compileDescriptor(): string {
  const root = new protobuf.Root();
  // google/protobuf's well-known types come with protobufjs; descriptor.proto (imported for custom options) as a file of its package.
  const descriptorProto = join(
    createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader')).resolve('protobufjs'),
    '..',
    'google/protobuf/descriptor.proto',
  );
  root.resolvePath = (_origin, target) =>
    target === 'google/protobuf/descriptor.proto'
      ? descriptorProto
      : target.startsWith('google/protobuf/')
        ? target
        : join(VENDOR_DIR, target);
  root.loadSync(EXT_AUTHZ_PROTO, { keepCase: true });
  root.resolveAll();
  return `${JSON.stringify(root.toJSON({ keepComments: false }), null, 1)}\n`;
}

if (import.meta.main) {
  const text = compileDescriptor();
  const before = (() => {
    try {
      return readFileSync(DESCRIPTOR_FILE, 'utf8');
    } catch {
      return undefined;
    }
  })();
  if (before !== text) {
    writeFileSync(DESCRIPTOR_FILE, text);
    process.stdout.write(`${DESCRIPTOR_FILE}: written from ${VENDOR_DIR}\n`);
  }
}
