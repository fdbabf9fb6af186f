import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import {
  ConfigError,
  ConfigMissingKeyError,
  ConfigUnknownKeyError,
  ConfigUnknownVariableError,
} from '../../src/config/config-error.ts';
import { closest } from '../../src/config/closest.ts';
import { loadConfig } from '../../src/config/load.ts';
import { envName } from '../../src/config/variables.ts';

const Schema = Type.Object(
  {
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 7000, description: 'a TCP port (1-65535)' }),
    sts: Type.Object(
      { clientId: Type.String(), clientSecret: Type.String({ minLength: 16 }) },
      { additionalProperties: false },
    ),
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
    const config = loadConfig(Schema, {
      env: { BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb' },
    });
    assert.equal(config.port, 7000);
  });

  it('names the file, the key and what was expected', () => {
    const path = file('port: 99999\nsts: { clientId: a, clientSecret: aaaaaaaaaaaaaaaa }\n');
    assert.throws(
      () => loadConfig(Schema, { file: path }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.key === 'port' &&
        error.message.includes(path) &&
        error.message.includes('a TCP port (1-65535)'),
    );
  });

  it('names the environment variable when the bad value came from there', () => {
    assert.throws(
      () =>
        loadConfig(Schema, {
          env: { BATON_PORT: 'eighty', BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb' },
        }),
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
    assert.throws(
      () => loadConfig(Schema, { file: path }),
      (error: unknown) => error instanceof ConfigError && /config\.yaml:\d+:\d+/.test(error.message),
    );
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
      (error: unknown) =>
        error instanceof ConfigUnknownKeyError &&
        error.key === 'favouriteColour' &&
        error.suggestion === undefined &&
        error.message.includes('port, sts, tags'),
    );
  });

  it('says "missing" for a required key with no value, and names its environment variable', () => {
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_STS__CLIENT_ID: 'a' } }),
      (error: unknown) =>
        error instanceof ConfigMissingKeyError &&
        error.code === 'BATON_CONFIG_INVALID' &&
        error.reason === 'missing-key' &&
        error.key === 'sts.clientSecret' &&
        /missing/.test(error.message) &&
        error.message.includes('BATON_STS__CLIENT_SECRET'),
    );
  });

  it('refuses a mistyped BATON_ variable as it refuses an unknown key in the file, suggesting the variable meant, without echoing its value', () => {
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_STS__CLIENT_ID: 'a', BATON_STS__CLIENT_SECRTE: 'bbbbbbbbbbbbbbbb' } }),
      (error: unknown) =>
        error instanceof ConfigUnknownVariableError &&
        error.code === 'BATON_CONFIG_INVALID' &&
        error.reason === 'unknown-key' &&
        error.variable === 'BATON_STS__CLIENT_SECRTE' &&
        error.message ===
          'environment variable BATON_STS__CLIENT_SECRTE: no baton setting has this name; did you mean BATON_STS__CLIENT_SECRET?',
    );
    // A name close to none: no guess, but what to do.
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_FROBNICATE: '1' } }),
      (error: unknown) =>
        error instanceof ConfigUnknownVariableError && /unset it, or fix its name/.test(error.message),
    );
  });

  it('leaves alone the variables another part reads, and suggests one when the name is close to it', () => {
    const otherParts = new Map([
      ['BATON_SIDECAR__IMAGE', 'the injector'],
      ['BATON_ISSUER', 'the sts'],
    ]);
    const config = loadConfig(Schema, {
      env: {
        BATON_STS__CLIENT_ID: 'a',
        BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb',
        BATON_SIDECAR__IMAGE: 'x',
        BATON_ISSUER: 'y',
      },
      otherParts,
    });
    assert.equal(config.sts.clientId, 'a');
    assert.throws(
      () => loadConfig(Schema, { env: { BATON_SIDECAR__IMAG: 'x' }, otherParts }),
      (error: unknown) =>
        error instanceof ConfigUnknownVariableError &&
        error.message.endsWith('did you mean BATON_SIDECAR__IMAGE (read by the injector)?'),
    );
  });

  it("leaves alone the image's BATON_HEALTHCHECK_URL and Kubernetes service links, but not a lone name shaped like one", () => {
    const env = {
      BATON_STS__CLIENT_ID: 'a',
      BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb',
      BATON_HEALTHCHECK_URL: 'http://127.0.0.1:7072/readyz',
    };
    // What the kubelet gives every pod in a namespace with a Service named baton-sts (ports https 7000 and admin 7001).
    const links = {
      BATON_STS_SERVICE_HOST: '10.0.0.7',
      BATON_STS_SERVICE_PORT: '7000',
      BATON_STS_SERVICE_PORT_HTTPS: '7000',
      BATON_STS_SERVICE_PORT_ADMIN: '7001',
      BATON_STS_PORT: 'tcp://10.0.0.7:7000',
      BATON_STS_PORT_7000_TCP: 'tcp://10.0.0.7:7000',
      BATON_STS_PORT_7000_TCP_PROTO: 'tcp',
      BATON_STS_PORT_7000_TCP_PORT: '7000',
      BATON_STS_PORT_7000_TCP_ADDR: '10.0.0.7',
      BATON_STS_PORT_7001_TCP: 'tcp://10.0.0.7:7001',
    };
    assert.equal(loadConfig(Schema, { env: { ...env, ...links } }).port, 7000);
    // BATON_PORTT is a typo of BATON_PORT, and BATON_STS_PORT without its Service's host is no link.
    assert.throws(
      () => loadConfig(Schema, { env: { ...env, BATON_PORTT: '1' } }),
      (error: unknown) =>
        error instanceof ConfigUnknownVariableError && error.message.includes('did you mean BATON_PORT?'),
    );
    assert.throws(
      () => loadConfig(Schema, { env: { ...env, BATON_STS_PORT: 'tcp://10.0.0.7:7000' } }),
      (error: unknown) => error instanceof ConfigUnknownVariableError && error.variable === 'BATON_STS_PORT',
    );
  });

  it('reads only BATON_ names: other variables, and lower-case baton_ ones, are not its business', () => {
    assert.equal(
      loadConfig(Schema, {
        env: {
          BATON_STS__CLIENT_ID: 'a',
          BATON_STS__CLIENT_SECRET: 'bbbbbbbbbbbbbbbb',
          baton_sts__isuer: 'x',
          OTEL_SERVICE_NAME: 'x',
          HOME: '/root',
        },
      }).sts.clientId,
      'a',
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
