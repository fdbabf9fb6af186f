/**
 * How one external issuer shapes its access tokens, and how baton reads
 * them (docs/identity-providers.md). The default, `rfc9068`, is baton's own
 * strict reading of RFC 9068: `typ: at+jwt`, exactly one `aud`. A preset
 * relaxes only what its identity provider needs, and says where the
 * subject, the client, the scopes and the user/service distinction live.
 *
 * Pure: a profile is data, and `readProfileClaims` a function of the
 * verified claims; the verifier (verifier.ts) applies it after the
 * signature and time checks.
 */
import { parseScope } from '../core/claims.ts';
import { ACCESS_TOKEN_JWT_TYP } from '../core/token-types.ts';
import { TokenMalformedError, TokenWrongAudienceError, TokenWrongTypError } from './errors.ts';

export const PROFILE_NAMES = ['rfc9068', 'keycloak', 'entra', 'okta', 'auth0'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** `none`: the JOSE header has no `typ` at all. Other values are compared per RFC 7515 §4.1.9. */
export const NO_TYP = 'none';

export type AudienceMatch = 'exactly-one' | 'contains';
export type ScopeClaim = 'scope' | 'scp';
export const SUBJECT_CLAIMS = ['sub', 'oid', 'uid'] as const;
export type SubjectClaim = (typeof SUBJECT_CLAIMS)[number];
export const CLIENT_CLAIMS = ['client_id', 'azp', 'cid', 'appid'] as const;
export type ClientClaim = (typeof CLIENT_CLAIMS)[number];

/**
 * Named rules that map roles or permissions to scopes:
 * - `keycloak-realm-roles`: `realm_access.roles`
 * - `keycloak-client-roles`: `resource_access[<audience>].roles`
 * - `entra-roles`: `roles` (app roles, the only grant an app-only token carries)
 * - `auth0-permissions`: `permissions` (Auth0 RBAC)
 */
export const ROLE_RULES = [
  'keycloak-realm-roles',
  'keycloak-client-roles',
  'entra-roles',
  'auth0-permissions',
] as const;
export type RoleRule = (typeof ROLE_RULES)[number];

/**
 * Named rules that tell a service (client-credentials) token from a user
 * token; any rule that holds makes it a service token.
 * - `sub-is-client`: `sub` equals the client (RFC 9068 §2.2; Okta)
 * - `auth0-gty`: `gty` is `client-credentials`
 * - `entra-app`: `idtyp` is `app`, or no `scp` (Entra puts `scp` in every delegated token and in no app-only token)
 * - `keycloak-service-account`: a `client_id` (or legacy `clientId`) claim, which Keycloak adds to service-account tokens only
 */
export const SERVICE_RULES = ['sub-is-client', 'auth0-gty', 'entra-app', 'keycloak-service-account'] as const;
export type ServiceRule = (typeof SERVICE_RULES)[number];

export interface RoleScopes {
  readonly rule: RoleRule;
  /** Role → the scopes it grants. Absent: each role is a scope of the same name. */
  readonly map?: Readonly<Record<string, readonly string[]>> | undefined;
}

export interface IssuerProfile {
  readonly name: ProfileName;
  /** Normalised (lower case, no `application/`), `none` for an absent typ. */
  readonly typ: readonly string[];
  readonly audienceMatch: AudienceMatch;
  readonly scopeClaim: ScopeClaim;
  readonly roleScopes: RoleScopes | undefined;
  readonly subjectClaim: SubjectClaim;
  /** The first one present names the client. */
  readonly clientClaims: readonly ClientClaim[];
  readonly serviceWhen: readonly ServiceRule[];
  /** Entra: the `tid` claim must equal the tenant in the issuer URL. */
  readonly tenantClaim: 'tid' | undefined;
}

export const PRESETS: Readonly<Record<ProfileName, IssuerProfile>> = Object.freeze({
  rfc9068: {
    name: 'rfc9068',
    typ: [ACCESS_TOKEN_JWT_TYP],
    audienceMatch: 'exactly-one',
    scopeClaim: 'scope',
    roleScopes: undefined,
    subjectClaim: 'sub',
    clientClaims: ['client_id'],
    serviceWhen: ['sub-is-client'],
    tenantClaim: undefined,
  },
  // Keycloak access tokens: header typ JWT, aud often ["<client>", "account"], azp names the client.
  keycloak: {
    name: 'keycloak',
    typ: [ACCESS_TOKEN_JWT_TYP, 'jwt'],
    audienceMatch: 'contains',
    scopeClaim: 'scope',
    roleScopes: undefined,
    subjectClaim: 'sub',
    clientClaims: ['azp', 'client_id'],
    serviceWhen: ['keycloak-service-account'],
    tenantClaim: undefined,
  },
  // Microsoft identity platform v2.0 access tokens: typ JWT, scp string, oid the stable user id (sub is pairwise per app).
  entra: {
    name: 'entra',
    typ: ['jwt'],
    audienceMatch: 'exactly-one',
    scopeClaim: 'scp',
    roleScopes: { rule: 'entra-roles' },
    subjectClaim: 'oid',
    clientClaims: ['azp', 'appid'],
    serviceWhen: ['entra-app'],
    tenantClaim: 'tid',
  },
  // Okta custom authorization server: no typ (or JWT), scp array, cid the client; sub is the client for client credentials.
  okta: {
    name: 'okta',
    typ: [ACCESS_TOKEN_JWT_TYP, 'jwt', NO_TYP],
    audienceMatch: 'contains',
    scopeClaim: 'scp',
    roleScopes: undefined,
    subjectClaim: 'sub',
    clientClaims: ['cid', 'client_id'],
    serviceWhen: ['sub-is-client'],
    tenantClaim: undefined,
  },
  // Auth0: typ JWT (at+jwt with its RFC 9068 profile), aud an array with /userinfo, gty for machine-to-machine.
  auth0: {
    name: 'auth0',
    typ: [ACCESS_TOKEN_JWT_TYP, 'jwt'],
    audienceMatch: 'contains',
    scopeClaim: 'scope',
    roleScopes: undefined,
    subjectClaim: 'sub',
    clientClaims: ['client_id', 'azp'],
    serviceWhen: ['auth0-gty', 'sub-is-client'],
    tenantClaim: undefined,
  },
});

/** A profile from config: a preset, with any field the operator sets in its place. */
export interface IssuerProfileOverrides {
  readonly profile?: ProfileName | undefined;
  readonly typ?: readonly string[] | undefined;
  readonly audienceMatch?: AudienceMatch | undefined;
  readonly scopeClaim?: ScopeClaim | undefined;
  readonly roleScopes?: RoleScopes | undefined;
  readonly subjectClaim?: SubjectClaim | undefined;
  readonly clientClaims?: readonly ClientClaim[] | undefined;
  readonly serviceWhen?: readonly ServiceRule[] | undefined;
}

export function resolveProfile(overrides: IssuerProfileOverrides = {}): IssuerProfile {
  const preset = PRESETS[overrides.profile ?? 'rfc9068'];
  return Object.freeze({
    name: preset.name,
    typ: Object.freeze((overrides.typ ?? preset.typ).map((t) => (t === NO_TYP ? NO_TYP : normalizeTyp(t)))),
    audienceMatch: overrides.audienceMatch ?? preset.audienceMatch,
    scopeClaim: overrides.scopeClaim ?? preset.scopeClaim,
    roleScopes: overrides.roleScopes ?? preset.roleScopes,
    subjectClaim: overrides.subjectClaim ?? preset.subjectClaim,
    clientClaims: Object.freeze([...(overrides.clientClaims ?? preset.clientClaims)]),
    serviceWhen: Object.freeze([...(overrides.serviceWhen ?? preset.serviceWhen)]),
    tenantClaim: preset.tenantClaim,
  });
}

/** RFC 7515 §4.1.9: media types are compared case-insensitively, with `application/` omitted. */
export function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

/** RFC 9068 §4: resource servers MUST check typ; a profile names the values its IdP really sends. */
export function checkTyp(typ: unknown, profile: IssuerProfile): void {
  const seen = typ === undefined ? NO_TYP : typeof typ === 'string' ? normalizeTyp(typ) : undefined;
  if (seen === undefined || !profile.typ.includes(seen)) {
    const shown =
      typeof typ === 'string' ? JSON.stringify(typ.slice(0, 40)) : typ === undefined ? 'none' : 'a non-string';
    throw new TokenWrongTypError(`expected typ ${profile.typ.join(' or ')} (profile ${profile.name}), got ${shown}`);
  }
}

/** What a profile reads out of an external token. */
export interface ProfileIdentity {
  readonly subject: string;
  readonly clientId: string | undefined;
  /** False for a service (client-credentials) token. */
  readonly user: boolean;
  readonly scopes: ReadonlySet<string>;
}

/**
 * The audience, token-confusion, subject, client, scope and user/service
 * rules of `profile`, on claims whose signature, issuer and times are
 * already verified.
 */
export function readProfileClaims(
  claims: Readonly<Record<string, unknown>>,
  profile: IssuerProfile,
  expected: { readonly issuer: string; readonly audience: string },
): ProfileIdentity {
  checkAudience(claims.aud, profile.audienceMatch, expected.audience);
  refuseIdToken(claims);
  if (profile.tenantClaim !== undefined) checkTenant(claims[profile.tenantClaim], expected.issuer);

  const subject = claims[profile.subjectClaim];
  if (typeof subject !== 'string' || subject === '')
    throw new TokenMalformedError(`expected a non-empty ${profile.subjectClaim} claim (profile ${profile.name})`);
  let clientId: string | undefined;
  for (const name of profile.clientClaims) {
    const value = claims[name];
    if (typeof value === 'string' && value !== '') {
      clientId = value;
      break;
    }
  }
  const scopes = readScopes(claims, profile, expected.audience);
  return { subject, clientId, user: !isServiceToken(claims, profile, clientId), scopes };
}

function checkAudience(aud: unknown, match: AudienceMatch, audience: string): void {
  if (match === 'exactly-one') {
    // RFC 9068 §4 with baton's own rule: one aud, so a token is never valid at two services.
    const one = Array.isArray(aud) && aud.length === 1 ? aud[0] : aud;
    if (one !== audience)
      throw new TokenWrongAudienceError(`expected exactly one aud equal to ${JSON.stringify(audience)}`);
    return;
  }
  // RFC 9068 §4 / RFC 7519 §4.1.3: the aud MUST contain an identifier of this resource server.
  const contains = typeof aud === 'string' ? aud === audience : Array.isArray(aud) && aud.includes(audience);
  if (!contains) throw new TokenWrongAudienceError(`expected aud to contain ${JSON.stringify(audience)}`);
}

/**
 * With `typ: JWT` accepted, an id_token has the same header as an access
 * token. OpenID Connect Core §2/§3 claims that only an id_token carries
 * (`nonce`, `at_hash`, `c_hash`), Keycloak's `typ: ID` claim, and an id_token
 * `typ` header give it away; the audience check has usually refused it
 * already, since an id_token's aud is the client, not the API.
 */
function refuseIdToken(claims: Readonly<Record<string, unknown>>): void {
  if ('nonce' in claims || 'at_hash' in claims || 'c_hash' in claims || claims.typ === 'ID') {
    throw new TokenWrongTypError('expected an access token, got an OpenID Connect id_token', { reason: 'id-token' });
  }
}

/** Entra: `iss` is https://login.microsoftonline.com/<tid>/v2.0; a token whose `tid` names another tenant is refused. */
function checkTenant(tid: unknown, issuer: string): void {
  if (typeof tid !== 'string' || !new URL(issuer).pathname.split('/').includes(tid)) {
    throw new TokenMalformedError('expected a tid claim naming the tenant of the issuer');
  }
}

function readScopes(
  claims: Readonly<Record<string, unknown>>,
  profile: IssuerProfile,
  audience: string,
): ReadonlySet<string> {
  const scopes =
    profile.scopeClaim === 'scp'
      ? scpScopes(claims.scp)
      : claims.scope === undefined && Array.isArray(claims.scp)
        ? scpScopes(claims.scp)
        : parseScope(claims.scope);
  if (profile.roleScopes === undefined) return scopes;
  const out = new Set(scopes);
  const { map } = profile.roleScopes;
  for (const role of roles(claims, profile.roleScopes.rule, audience)) {
    const granted = map === undefined ? [role] : Object.hasOwn(map, role) ? (map[role] ?? []) : [];
    for (const scope of granted) out.add(scope);
  }
  return out;
}

/** `scp`: a space-separated string (Entra) or an array of strings (Okta). */
function scpScopes(scp: unknown): Set<string> {
  if (typeof scp === 'string') return parseScope(scp);
  if (Array.isArray(scp))
    return new Set(scp.filter((s): s is string => typeof s === 'string' && s !== '' && !s.includes(' ')));
  return new Set();
}

function roles(claims: Readonly<Record<string, unknown>>, rule: RoleRule, audience: string): string[] {
  let list: unknown;
  switch (rule) {
    case 'keycloak-realm-roles':
      list = member(claims.realm_access, 'roles');
      break;
    case 'keycloak-client-roles':
      list = member(member(claims.resource_access, audience), 'roles');
      break;
    case 'entra-roles':
      list = claims.roles;
      break;
    case 'auth0-permissions':
      list = claims.permissions;
      break;
  }
  // A role with a space would read as two scopes.
  return Array.isArray(list)
    ? list.filter((r): r is string => typeof r === 'string' && r !== '' && !r.includes(' '))
    : [];
}

function member(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function isServiceToken(
  claims: Readonly<Record<string, unknown>>,
  profile: IssuerProfile,
  clientId: string | undefined,
): boolean {
  return profile.serviceWhen.some((rule) => {
    switch (rule) {
      case 'sub-is-client':
        return clientId !== undefined && claims.sub === clientId;
      case 'auth0-gty':
        return claims.gty === 'client-credentials';
      case 'entra-app':
        return claims.idtyp === 'app' || claims.scp === undefined;
      case 'keycloak-service-account':
        return typeof claims.client_id === 'string' || typeof claims.clientId === 'string';
    }
    return false;
  });
}
