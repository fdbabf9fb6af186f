/**
 * The Redis ACL file (https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/)
 * for a baton mesh: one user per sidecar, limited to its own key prefix and
 * to GET and SET; one for the STS, limited to its replay keys and SET; an
 * operator's user; and the unauthenticated `default` user switched off, so
 * a process that merely reaches Redis (an app container) can do nothing.
 * Passwords appear only as SHA-256 hashes (`#<hex>`), so the file itself
 * grants nothing to whoever reads it.
 */
import { hash } from 'node:crypto';
import { join } from 'node:path';
import { STS_KEY_PREFIX, STS_REDIS_USER, sidecarKeyPrefix, sidecarRedisUser } from './config.ts';

export const ADMIN_REDIS_USER = 'baton-admin';

/** What each kind of user may run: nothing else, no pub/sub channels, no key outside its prefix. */
export const SIDECAR_COMMANDS = ['get', 'set'] as const;
export const STS_COMMANDS = ['set'] as const;

export interface AclUser {
  readonly name: string;
  /** The password itself: only its hash is written. */
  readonly password: string;
  /** `~` key patterns; `undefined` for the operator (every key). */
  readonly keys?: string;
  readonly commands?: readonly string[];
}

export const sidecarAclUser = (service: string, password: string): AclUser => ({
  name: sidecarRedisUser(service),
  password,
  keys: `${sidecarKeyPrefix(service)}*`,
  commands: SIDECAR_COMMANDS,
});
export const stsAclUser = (password: string): AclUser => ({
  name: STS_REDIS_USER,
  password,
  keys: `${STS_KEY_PREFIX}*`,
  commands: STS_COMMANDS,
});
export const adminAclUser = (password: string): AclUser => ({ name: ADMIN_REDIS_USER, password });

export function renderAclFile(users: readonly AclUser[]): string {
  // Redis ACL files take no comments: every line is a user.
  const lines = ['user default off resetpass resetkeys resetchannels -@all'];
  for (const user of users) {
    const secret = `#${hash('sha256', user.password, 'hex')}`;
    if (user.keys === undefined) lines.push(`user ${user.name} on resetpass ${secret} ~* &* +@all`);
    else
      lines.push(
        `user ${user.name} on resetpass ${secret} resetkeys ~${user.keys} resetchannels -@all ${(user.commands ?? []).map((c) => `+${c}`).join(' ')}`,
      );
  }
  return lines.join('\n') + '\n';
}

/**
 * Where `baton redis-acl --dir DIR` puts things: one directory per ACL user,
 * named after it, so each can be mounted (or made a Secret) on its own.
 */
export const redisSecretsLayout = {
  aclFile: (dir: string): string => join(dir, 'users.acl'),
  sidecar: (dir: string, service: string) => ({
    username: sidecarRedisUser(service),
    passwordFile: join(dir, sidecarRedisUser(service), 'password'),
    sealKeyFile: join(dir, sidecarRedisUser(service), 'seal-key'),
  }),
  sts: (dir: string) => ({ username: STS_REDIS_USER, passwordFile: join(dir, STS_REDIS_USER, 'password') }),
  admin: (dir: string) => ({ username: ADMIN_REDIS_USER, passwordFile: join(dir, ADMIN_REDIS_USER, 'password') }),
};
