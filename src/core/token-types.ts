/** Token type identifiers, RFC 8693 §3, and the grant type of §2.1. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const CLIENT_CREDENTIALS_GRANT = 'client_credentials';

export const TokenType = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  refreshToken: 'urn:ietf:params:oauth:token-type:refresh_token',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  saml1: 'urn:ietf:params:oauth:token-type:saml1',
  saml2: 'urn:ietf:params:oauth:token-type:saml2',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;
export type TokenTypeUri = (typeof TokenType)[keyof typeof TokenType];

/** RFC 9068 §2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_JWT_TYP = 'at+jwt';

/** RFC 7523 §2.2 client assertion type for `private_key_jwt`. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
