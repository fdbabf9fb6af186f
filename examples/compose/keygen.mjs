// One-shot key generation for the docker-compose mesh: the policy server's
// ES256 signing key pair, written once into the shared `baton-keys` volume.
// The private key goes to private/, which only the policy server mounts; the
// public key to public/, which the sidecars and the STS mount. A sidecar that
// could read the private key could sign a call graph of its own.
// Development only; in Kubernetes the keys come from Secrets.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '/var/lib/baton/keys';
const privatePath = join(dir, 'private', 'policy-signing.key.pem');
const publicPath = join(dir, 'public', 'policy-signing.pub.pem');
if (existsSync(privatePath) && existsSync(publicPath)) {
  console.log(JSON.stringify({ msg: 'policy signing key already present', dir }));
} else {
  mkdirSync(join(dir, 'private'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'public'), { recursive: true, mode: 0o755 });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicPath, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  console.log(
    JSON.stringify({
      msg: 'policy signing key generated',
      dir,
      warning: 'development key: use a Secret in production',
    }),
  );
}
