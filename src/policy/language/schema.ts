/**
 * The shape of a CallGraph document as written (before normalisation), as
 * TypeBox schemas. Unknown keys are errors: a misspelt `orgins` must not
 * silently widen a rule. Value checks that deserve their own problem code
 * (methods, paths, scope expressions, names, maxDepth range, kind) live in
 * validate.ts; the schema only fixes types and keys.
 */
import { type Static, Type } from '@sinclair/typebox';

const Mode = Type.Union([Type.Literal('enforce'), Type.Literal('shadow')], { description: "'enforce' or 'shadow'" });
const User = Type.Union([Type.Literal('required'), Type.Literal('optional'), Type.Literal('none')], {
  description: "'required', 'optional' or 'none'",
});
const NonEmptyString = Type.String({ minLength: 1, description: 'a non-empty string' });
const NonEmptyList = (description: string) => Type.Array(NonEmptyString, { minItems: 1, description });

export const AcceptRuleSchema = Type.Object(
  {
    name: Type.Optional(NonEmptyString),
    description: Type.Optional(Type.String()),
    from: NonEmptyString,
    origins: Type.Optional(NonEmptyList('a non-empty list of service names')),
    methods: Type.Optional(NonEmptyList('a non-empty list of HTTP methods')),
    paths: Type.Optional(NonEmptyList('a non-empty list of path patterns')),
    grpc: Type.Optional(
      NonEmptyList('a non-empty list of gRPC methods (package.Service/Method, or package.Service/* for every method)'),
    ),
    scopes: Type.Optional(NonEmptyString),
    acr: Type.Optional(NonEmptyList('a non-empty list of acr values')),
    issuers: Type.Optional(NonEmptyList('a non-empty list of issuer URLs')),
    user: Type.Optional(User),
    allowCycles: Type.Optional(Type.Boolean()),
    mode: Type.Optional(Mode),
  },
  { additionalProperties: false },
);

export const ServiceSchema = Type.Object(
  {
    description: Type.Optional(Type.String()),
    entrypoint: Type.Optional(Type.Boolean()),
    mode: Type.Optional(Mode),
    accepts: Type.Optional(Type.Array(AcceptRuleSchema)),
  },
  { additionalProperties: false },
);

export const CallGraphSchema = Type.Object(
  {
    apiVersion: Type.String(),
    kind: Type.String(),
    metadata: Type.Object(
      {
        name: NonEmptyString,
        labels: Type.Optional(Type.Record(Type.String(), Type.String())),
        annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
      },
      { additionalProperties: false },
    ),
    spec: Type.Object(
      {
        maxDepth: Type.Optional(Type.Integer({ description: 'an integer from 1 to 64' })),
        mode: Type.Optional(Mode),
        services: Type.Record(Type.String(), ServiceSchema),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

export type RawAcceptRule = Static<typeof AcceptRuleSchema>;
export type RawService = Static<typeof ServiceSchema>;
export type RawCallGraph = Static<typeof CallGraphSchema>;

export const DEFAULT_MAX_DEPTH = 4;
export const MAX_MAX_DEPTH = 64;
