// One-shot key generation for the docker-compose mesh: the policy server's
// ES256 signing key pair, written once into the shared `baton-keys` volume.
// Development only; in Kubernetes the keys come from Secrets.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '/var/lib/baton/keys';
const privatePath = join(dir, 'policy-signing.key.pem');
const publicPath = join(dir, 'policy-signing.pub.pem');
if (existsSync(privatePath) && existsSync(publicPath)) {
  console.log(JSON.stringify({ msg: 'policy signing key already present', dir }));
} else {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicPath, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  console.log(JSON.stringify({ msg: 'policy signing key generated', dir, warning: 'development key: use a Secret in production' }));
}
