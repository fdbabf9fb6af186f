import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { ConfigError, ConfigMissingKeyError, ConfigUnknownKeyError } from '../../src/config/config-error.ts';
import { closest } from '../../src/config/closest.ts';
import { envName, loadConfig } from '../../src/config/load.ts';

const Schema = Type.Object(
  {
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 7000, description: 'a TCP port (1-65535)' }),
    sts: Type.Object({ clientId: Type.String(), clientSecret: Type.String({ minLength: 16 }) }, { additionalProperties: false }),
    tags: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'baton-config-')), 'config.yaml');
  writeFileSync(path, text);
  return path;
}

describe('config loading', () => {
  it('maps nested camelCase keys to BATON_ environment variable names', () => {
    assert.equal(envName(['sts', 'clientSecret']), 'BATON_STS__CLIENT_SECRET');
  });

  it('reads a file, lets the environment override it, and freezes the result', () => {
    const config = loadConfig(Schema, {
      file: file('sts: { clientId: a, clientSecret: aaaaaaaaaaaaaaaa }\n'),
      env: { BATON_PORT: '7100', BATON_STS__CLIENT_ID: 'orders', BATON_TAGS: '[x, y]' },
    });
    assert.equal(config.port, 7100);
    assert.equal(config.sts.clientId, 'orders');
    assert.deepEqual(config.tags, ['x', 'y']);
    assert.ok(Object.isFrozen(config.sts));
  });

  it('applies defaults', () => {
    const config = loadConfig(Schema, { env: { BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb' } });
    assert.equal(config.port, 7000);
  });

  it('names the file, the key and what was expected', () => {
    const path = file('port: 99999\nsts: { clientId: a, clientSecret: aaaaaaaaaaaaaaaa }\n');
    assert.throws(
      () => loadConfig(Schema, { file: path }),
      (error: unknown) => error instanceof ConfigError && error.key === 'port' && error.message.includes(path) && error.message.includes('a TCP port (1-65535)'),
    );
  });

  it('names the environment variable when the bad value came from there', () => {
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_PORT: 'eighty', BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb' } }),
      (error: unknown) => error instanceof ConfigError && error.message.includes('BATON_PORT'),
    );
  });

  it('never echoes a malformed secret', () => {
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRET: 'short-secret' } }),
      (error: unknown) => error instanceof ConfigError && !error.message.includes('short-secret'),
    );
  });

  it('reports YAML syntax errors with line and column', () => {
    const path = file('port: [1,\n');
    assert.throws(() => loadConfig(Schema, { file: path }), (error: unknown) => error instanceof ConfigError && /config\.yaml:\d+:\d+/.test(error.message));
  });

  it('names a mistyped key and suggests the known one, without echoing its secret value', () => {
    const path = file('sts: { clientId: a, clientSecrte: hunter2-hunter2-hunter2 }\n');
    assert.throws(
      () => loadConfig(Schema, { file: path }),
      (error: unknown) =>
        error instanceof ConfigUnknownKeyError &&
        error.code === 'BATON_CONFIG_INVALID' &&
        error.reason === 'unknown-key' &&
        error.key === 'sts.clientSecrte' &&
        error.suggestion === 'clientSecret' &&
        error.message.includes("did you mean 'sts.clientSecret'") &&
        !error.message.includes('hunter2'),
    );
  });

  it('lists the known keys when an unknown key is close to none of them', () => {
    const path = file('sts: { clientId: a, clientSecret: aaaaaaaaaaaaaaaa }\nfavouriteColour: blue\n');
    assert.throws(
      () => loadConfig(Schema, { file: path }),
      (error: unknown) => error instanceof ConfigUnknownKeyError && error.key === 'favouriteColour' && error.suggestion === undefined && error.message.includes('port, sts, tags'),
    );
  });

  it('says "missing" for a required key with no value, and names its environment variable', () => {
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_STS__CLIENT_ID: 'a' } }),
      (error: unknown) => error instanceof ConfigMissingKeyError && error.code === 'BATON_CONFIG_INVALID' && error.reason === 'missing-key' && error.key === 'sts.clientSecret' && /missing/.test(error.message) && error.message.includes('BATON_STS__CLIENT_SECRET'),
    );
  });

  it('points at a mistyped environment variable when the key it was meant for is missing', () => {
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRTE: 'bbbbbbbbbbbbbbbb' } }),
      (error: unknown) => error instanceof ConfigMissingKeyError && error.message.includes('BATON_STS__CLIENT_SECRTE is set') && !error.message.includes('bbbbbbbbbbbbbbbb'),
    );
  });
});

describe('closest known name', () => {
  it('forgives one swap, one missing or one extra letter, and case', () => {
    assert.equal(closest('clientSecrte', ['clientId', 'clientSecret']), 'clientSecret');
    assert.equal(closest('polcy', ['policy', 'sts']), 'policy');
    assert.equal(closest('ClientID', ['clientId', 'clientSecret']), 'clientId');
  });

  it('suggests nothing for a name close to no known one', () => {
    assert.equal(closest('favouriteColour', ['port', 'sts', 'tags']), undefined);
    assert.equal(closest('x', ['sts']), undefined);
  });
});
