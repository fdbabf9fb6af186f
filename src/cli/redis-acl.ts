import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import {
  adminAclUser,
  type AclUser,
  redisSecretsLayout,
  renderAclFile,
  sidecarAclUser,
  stsAclUser,
} from '../redis/acl.ts';
import { SEAL_KEY_BYTES } from '../sidecar/exchange/token-seal.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { isServiceName } from '../core/service-name.ts';

const HELP = `Usage: baton redis-acl --services A,B,... --dir DIR [--acl-file FILE] [--no-sts] [--no-admin]

Writes the Redis ACL file for a baton mesh and the secrets that go with it:

  DIR/sidecar-<service>/password   the service's Redis ACL password
  DIR/sidecar-<service>/seal-key   the key its sidecar seals tokens with
  DIR/baton-sts/password           the STS replay store's password
  DIR/baton-admin/password         an operator's user (all keys, all commands)
  DIR/users.acl                    the ACL file, passwords as SHA-256 hashes

Each sidecar user may GET and SET under baton:<service>:* only; the STS may
SET under baton:_sts:* only; the default (unauthenticated) user is off.
Secrets already in DIR are kept, so running it again after adding a service
changes nothing for the others; delete a file to rotate it. Mount each
sidecar-<service> directory into that service's sidecar container only
(docs/security.md "Redis").

Options:
  --services LIST  the mesh's service names, comma-separated
  --dir DIR        where the secrets are written (created, mode 0700)
  --acl-file FILE  where the ACL file goes (default DIR/users.acl)
  --no-sts         no STS user (the STS does not use Redis)
  --no-admin       no operator user

Exit status: 0 written, 1 a file could not be written, 2 usage error.`;

/** `baton redis-acl`: the ACL users and the sidecars' secrets, generated on the machine that runs it. */
export const redisAclCommand: Command = {
  summary: 'write the Redis ACL file and per-service Redis passwords and seal keys',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values } = parseArgs({
      args: [...args],
      options: {
        services: { type: 'string' },
        dir: { type: 'string' },
        'acl-file': { type: 'string' },
        'no-sts': { type: 'boolean', default: false },
        'no-admin': { type: 'boolean', default: false },
      },
      allowPositionals: false,
      strict: true,
    });
    if (values.services === undefined) throw new UsageError('redis-acl expects --services A,B,...');
    if (values.dir === undefined) throw new UsageError('redis-acl expects --dir DIR');
    const services = [
      ...new Set(
        values.services
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      ),
    ];
    if (services.length === 0) throw new UsageError('redis-acl expects at least one service in --services');
    for (const service of services)
      if (!isServiceName(service))
        throw new UsageError(
          `expected service names as DNS labels (a-z, 0-9, -), or service.namespace, got '${service}'`,
        );
    const dir = values.dir;
    const users: AclUser[] = [];
    const password = (): string => randomBytes(32).toString('base64url');
    for (const service of services) {
      const files = redisSecretsLayout.sidecar(dir, service);
      users.push(sidecarAclUser(service, secretFile(files.passwordFile, password)));
      secretFile(files.sealKeyFile, () => randomBytes(SEAL_KEY_BYTES).toString('base64'));
    }
    if (!values['no-sts']) users.push(stsAclUser(secretFile(redisSecretsLayout.sts(dir).passwordFile, password)));
    if (!values['no-admin']) users.push(adminAclUser(secretFile(redisSecretsLayout.admin(dir).passwordFile, password)));
    const aclFile = values['acl-file'] ?? redisSecretsLayout.aclFile(dir);
    mkdirSync(dirname(aclFile), { recursive: true });
    // Hashes only: readable by the Redis server's own user, which is not the one that ran this.
    writeFileSync(aclFile, renderAclFile(users), { mode: 0o644 });
    chmodSync(aclFile, 0o644);
    context.stdout.write(`wrote ${aclFile}: ${users.map((u) => u.name).join(', ')}; secrets in ${dir}\n`);
    return 0;
  },
};

/** The secret in `file`, made with `generate` when there is none yet (mode 0600, its directory 0700). */
function secretFile(file: string, generate: () => string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const secret = generate();
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}
