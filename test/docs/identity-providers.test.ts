/**
 * docs/identity-providers.md holds as written. Every `externalIssuers`
 * example loads in the STS and, less the STS-only `discovery` key the page
 * marks as such, in the entrypoint sidecar: the page says to list each
 * issuer in both. "v1.0 tokens": the example entry accepts a v1.0 access
 * token shaped as Microsoft lists its claims (iss on sts.windows.net, appid,
 * ver 1.0) and reads it as the page says; the v2.0 entry above it refuses
 * the same token with the error the page quotes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { SidecarExternalIssuerSchema } from '../../src/sidecar/config.ts';
import { StsExternalIssuerSchema } from '../../src/sts/config.ts';
import { isTokenError } from '../../src/token/errors.ts';
import { profileOf } from '../../src/token/issuer-profile-config.ts';
import { createLocalKeySource } from '../../src/token/key-source.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { createSigner, nowSec } from '../helpers/token.ts';

const page = readFileSync(fileURLToPath(new URL('../../docs/identity-providers.md', import.meta.url)), 'utf8');
const entra = page.slice(
  page.indexOf('## Microsoft Entra ID'),
  page.indexOf('\n## ', page.indexOf('## Microsoft Entra ID') + 1),
);
const v1 = entra.slice(entra.indexOf('### v1.0 tokens'));
const yamlBlocks = (text: string): string[] =>
  [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map(([, body]) => body as string);

type Entry = Record<string, unknown> & { issuer: string; audience: string };

/** The page's externalIssuers entries, loaded by a part's schema (the STS's takes `discovery`, the sidecar's does not). */
function entries(text: string, part: 'sidecar' | 'sts'): Entry[] {
  const Schema = Type.Object({
    externalIssuers: Type.Array(part === 'sidecar' ? SidecarExternalIssuerSchema : StsExternalIssuerSchema),
  });
  return yamlBlocks(text).flatMap((block) => {
    const parsed = parse(block) as { externalIssuers: Array<Record<string, unknown>> };
    return loadConfig(Schema, { overrides: { externalIssuers: parsed.externalIssuers } }).externalIssuers as Entry[];
  });
}

describe('docs/identity-providers.md: every externalIssuers example', () => {
  it('loads in the STS, and in the sidecar once `discovery` (marked "STS" on its line) is dropped', () => {
    const blocks = yamlBlocks(page).filter((block) => /^externalIssuers:/m.test(block));
    assert.ok(blocks.length >= 6, `the examples (${blocks.length})`);
    for (const block of blocks) {
      assert.doesNotThrow(() => entries(block, 'sts'), block);
      for (const line of block.split('\n').filter((l) => /^\s+discovery:/.test(l)))
        assert.match(line, /# STS\b/, `the page marks discovery as the STS's: ${line}`);
      const sidecar = block.replace(/^\s+discovery:.*\n/gm, '');
      assert.doesNotThrow(() => entries(sidecar, 'sidecar'), sidecar);
    }
  });
});

describe('docs/identity-providers.md: Entra v1.0 tokens', () => {
  it('has the section, linked from the contents', () => {
    assert.ok(v1.startsWith('### v1.0 tokens'), 'a "### v1.0 tokens" section under Microsoft Entra ID');
    assert.ok(page.includes('(#v10-tokens)'));
  });

  it('its example entry, which the sidecar and the STS both load, accepts a v1.0 token and reads it as the page says: oid, appid, scp, a user', async () => {
    assert.deepEqual(
      entries(v1, 'sts').map((e) => e.issuer),
      entries(v1, 'sidecar').map((e) => e.issuer),
    );
    const [entry] = entries(v1, 'sidecar');
    assert.ok(entry !== undefined, 'a yaml example in the section');
    assert.equal(entry.profile, 'entra');
    assert.match(
      entry.issuer,
      /^https:\/\/sts\.windows\.net\/[0-9a-f-]{36}\/$/,
      'the v1.0 issuer, with its trailing slash',
    );
    const tid = entry.issuer.split('/')[3] as string;
    const idp = await createSigner('entra-v1', 'RS256');
    const verifier = createAccessTokenVerifier({
      issuers: [
        {
          issuer: entry.issuer,
          keys: createLocalKeySource({ keys: [idp.publicJwk] }),
          kind: 'external',
          audience: entry.audience,
          profile: profileOf(entry as unknown as Parameters<typeof profileOf>[0]),
        },
      ],
      maxActDepth: 4,
    });
    const token = await idp.sign(
      {
        aud: entry.audience,
        iss: entry.issuer,
        iat: nowSec() - 5,
        nbf: nowSec() - 5,
        exp: nowSec() + 300,
        appid: '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a',
        appidacr: '0',
        oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474',
        scp: 'Orders.Read',
        sub: 'pairwise-subject',
        tid,
        upn: 'alice@contoso.example',
        ver: '1.0',
      },
      { typ: 'JWT' },
    );
    const verified = await verifier.verify(token, { audience: 'gateway' });
    assert.equal(verified.subject, '690222be-ff1a-4d56-abd1-7e4f7d38e474');
    assert.equal(verified.clientId, '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a');
    assert.equal(verified.subjectIssuer, entry.issuer);
    assert.equal(verified.user, true);
    assert.deepEqual([...verified.scopes], ['Orders.Read']);
  });

  it('the v2.0 example refuses that token with the error the page quotes', async () => {
    const [v2] = entries(entra.slice(0, entra.indexOf('### v1.0 tokens')), 'sts');
    const [v1Entry] = entries(v1, 'sts');
    assert.ok(v2 !== undefined && v1Entry !== undefined);
    const idp = await createSigner('entra', 'RS256');
    const verifier = createAccessTokenVerifier({
      issuers: [
        {
          issuer: v2.issuer,
          keys: createLocalKeySource({ keys: [idp.publicJwk] }),
          kind: 'external',
          audience: v2.audience,
          profile: profileOf(v2 as unknown as Parameters<typeof profileOf>[0]),
        },
      ],
      maxActDepth: 4,
    });
    const token = await idp.sign(
      {
        aud: v2.audience,
        iss: v1Entry.issuer,
        iat: nowSec(),
        exp: nowSec() + 300,
        appid: 'a',
        oid: 'o',
        scp: 'x',
        sub: 's',
        tid: v1Entry.issuer.split('/')[3],
        ver: '1.0',
      },
      { typ: 'JWT' },
    );
    await assert.rejects(verifier.verify(token, { audience: 'gateway' }), (error: unknown) => {
      assert.ok(isTokenError(error));
      assert.equal(error.code, 'BATON_TOKEN_UNTRUSTED_ISSUER');
      assert.ok(v1.includes('`BATON_TOKEN_UNTRUSTED_ISSUER`'));
      // The page quotes the message with the tenant elided.
      const quoted =
        /\(`(expected an issuer from the allow-list, got "https:\/\/sts\.windows\.net\/)<tenant-id>\/"`\)/.exec(
          v1.replace(/\s+/g, ' '),
        );
      assert.ok(quoted, 'the page quotes the message');
      assert.ok(error.message.startsWith(quoted[1] as string), error.message);
      return true;
    });
  });
});
