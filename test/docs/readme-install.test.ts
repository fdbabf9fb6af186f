/**
 * README.md's Install section tells the truth about what a user can install:
 * while nothing is released it says the package and the image are not
 * published and installs them from a checkout, with the tarball name npm
 * pack writes and the image name the manifests use; after a release it must
 * say how to install from the registry (this test then asks for that).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import { parse } from 'yaml';
import { InjectorConfigSchema } from '../../src/injector/config.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const manifest = JSON.parse(read('package.json')) as { name: string; version: string };
const readme = read('README.md');
const install = readme.slice(
  readme.indexOf('## Install\n'),
  readme.indexOf('\n## ', readme.indexOf('## Install\n') + 1),
);
/** The shell lines of the section's ```sh blocks. */
const commands = [...install.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap(([, block]) =>
  (block as string)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean),
);
/** Versions with a section of their own in CHANGELOG.md: released. */
const released = [...read('CHANGELOG.md').matchAll(/^## \[?(\d+\.\d+\.\d+)\]?/gm)].map(([, v]) => v as string);

describe('README.md, Install', () => {
  it(
    released.length === 0
      ? 'says the package and the image are not published, and never installs them from a registry'
      : 'installs the released package from the registry',
    () => {
      if (released.length === 0) {
        assert.match(install, /not published/);
        assert.ok(
          !commands.includes(`npm install ${manifest.name}`),
          `npm install ${manifest.name} finds nothing on the registry before a release`,
        );
        assert.ok(!commands.some((c) => c.startsWith('docker pull')), 'no image is published before a release');
      } else {
        assert.ok(
          commands.includes(`npm install ${manifest.name}`),
          `released ${released.join(', ')}: say how to install it from the registry`,
        );
      }
    },
  );

  it('installs the tarball npm pack writes in the checkout', () => {
    assert.ok(commands.includes('npm ci && npm pack'));
    // npm pack names an unscoped package's tarball <name>-<version>.tgz.
    const tarball = `${manifest.name}-${manifest.version}.tgz`;
    assert.ok(
      commands.some((c) => c.startsWith('npm install ') && c.endsWith(`/${tarball}`)),
      `an npm install of ${tarball}`,
    );
  });

  it('tags the image it builds with the name and tag deploy/, the chart and the injector use', () => {
    const tagged = commands
      .find((c) => c.startsWith('docker tag '))
      ?.split(' ')
      .at(-1);
    assert.ok(tagged !== undefined, 'a docker tag command');
    const kustomization = parse(read('deploy/base/kustomization.yaml')) as {
      images: Array<{ name: string; newName: string; newTag: string }>;
    };
    const base = kustomization.images.find((i) => i.name === 'baton');
    const values = parse(read('helm/baton-mesh/values.yaml')) as { image: { repository: string; tag: string } };
    const chart = parse(read('helm/baton-mesh/Chart.yaml')) as { appVersion: string };
    const injector = (
      Value.Default(InjectorConfigSchema, { tls: { cert: 'c', key: 'k' } }) as { sidecar: { image: string } }
    ).sidecar.image;
    assert.equal(tagged, `${base?.newName}:${base?.newTag}`, 'deploy/base');
    assert.equal(
      tagged,
      `${values.image.repository}:${values.image.tag === '' ? chart.appVersion : values.image.tag}`,
      'helm/baton-mesh',
    );
    assert.equal(tagged, injector, "the injector's default sidecar image");
    assert.equal(tagged.split(':').at(-1), manifest.version, 'the package version');
  });
});
