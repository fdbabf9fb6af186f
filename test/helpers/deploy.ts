/**
 * The identity and transport keys of the #14 contract (docs/identity.md,
 * docs/kubernetes.md), as the deployment files must spell them.
 *
 * The deployment checks load every config with baton's own loader
 * (`loadConfig`). Until a part's schema has the contract's keys, this module
 * adds them to that schema, exactly as the contract names them, so a
 * misspelt or misplaced key still fails the load. A key the part's schema
 * already knows is left to the schema: once the parts implement the
 * contract, this module adds nothing and the checks run on the real schemas.
 */
import { type TObject, type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SpiffeMappingConfigSchema, WorkloadIdentityConfigSchema } from '../../src/identity/config.ts';

const SpiffeIdString = Type.String({ pattern: '^spiffe://[a-z0-9._-]+/' });

/** Top-level keys the sidecar, the STS and the policy server share. */
const SHARED: Record<string, TSchema> = {
  transport: Type.Object(
    { mode: Type.Union([Type.Literal('mtls'), Type.Literal('plaintext')], { default: 'mtls' }) },
    { additionalProperties: false, default: {} },
  ),
  identity: WorkloadIdentityConfigSchema,
  spiffe: SpiffeMappingConfigSchema,
};

type Part = 'sidecar' | 'sts' | 'policy-server';

const has = (schema: TSchema | undefined, key: string): boolean =>
  (schema as TObject | undefined)?.properties?.[key] !== undefined;

function withKeys(object: TObject, keys: Record<string, TSchema>): TObject {
  const added = Object.fromEntries(Object.entries(keys).filter(([key]) => !has(object, key)));
  if (Object.keys(added).length === 0) return object;
  return rebuilt(object, added);
}

function replaced(object: TObject, key: string, schema: TSchema): TObject {
  return rebuilt(object, { [key]: schema });
}

/** The object with some properties added or replaced; `required` follows from Optional, as in Type.Object. */
function rebuilt(object: TObject, properties: Record<string, TSchema>): TObject {
  const options: Record<string, unknown> = { additionalProperties: false };
  if (object.default !== undefined) options.default = object.default;
  if (object.description !== undefined) options.description = object.description;
  return Type.Object({ ...object.properties, ...properties }, options);
}

/** `schema` with whatever contract keys it lacks for `part`. */
export function withContract(schema: TObject, part: Part): TObject {
  let result = withKeys(schema, SHARED);
  if (part === 'sidecar') {
    const inbound = withKeys(result.properties.inbound as TObject, {
      clientCertificate: Type.Union([Type.Literal('required'), Type.Literal('optional')], { default: 'required' }),
      plaintextPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    });
    let sts = withKeys(result.properties.sts as TObject, { spiffeId: Type.Optional(SpiffeIdString) });
    if (!Value.Check(sts.properties.authMethod as TSchema, 'tls_client_auth')) {
      // tls_client_auth needs no secret (RFC 8705 §2): the contract makes clientSecret optional.
      // Its default depends on transport.mode, which a schema cannot say: files set it explicitly.
      sts = replaced(
        sts,
        'authMethod',
        Type.Union(
          [Type.Literal('tls_client_auth'), Type.Literal('client_secret_basic'), Type.Literal('client_secret_post')],
          { default: 'client_secret_basic' },
        ),
      );
      sts = replaced(sts, 'clientSecret', Type.Optional(sts.properties.clientSecret as TSchema));
    }
    const policy = withKeys(result.properties.policy as TObject, { spiffeId: Type.Optional(SpiffeIdString) });
    for (const [key, section] of Object.entries({ inbound, sts, policy }))
      if (section !== result.properties[key]) result = replaced(result, key, section);
  }
  if (part === 'sts') {
    const clients = result.properties.clients as unknown as { items: TObject } & TSchema;
    const client = withKeys(clients.items, {
      tlsClientAuth: Type.Optional(Type.Boolean()),
      tlsClientAuthSanUri: Type.Optional(SpiffeIdString),
    });
    if (client !== clients.items) result = replaced(result, 'clients', Type.Array(client, { default: [] }));
  }
  return result;
}

/** Whether today's schema for a part already implements the whole contract. */
export function implementsContract(schema: TObject, part: Part): boolean {
  return withContract(schema, part) === schema;
}
