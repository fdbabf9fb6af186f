/**
 * Writes the configuration reference of each part into its page in docs/:
 * the table between `<!-- config-keys:NAME -->` and `<!-- /config-keys -->`
 * is generated from the part's schema (src/config/describe.ts), so every
 * key and its default are documented and cannot drift from what the loader
 * accepts. test/docs/config-keys.test.ts fails when a page is out of date.
 *
 *   node scripts/config-reference.ts          rewrite the tables
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TObject } from '@sinclair/typebox';
import { AuthzConfigSchema } from '../src/authz/config.ts';
import { PolicyServerConfigSchema } from '../src/policy/distribution/config.ts';
import { describeKeys, markdownKeys } from '../src/config/describe.ts';
import { InjectorConfigSchema } from '../src/injector/config.ts';
import { SidecarConfigSchema } from '../src/sidecar/config.ts';
import { StsConfigSchema } from '../src/sts/config.ts';

export interface ConfigReference {
  readonly name: string;
  /** Relative to the repository root. */
  readonly page: string;
  readonly schema: TObject;
}

export const CONFIG_REFERENCES: readonly ConfigReference[] = [
  { name: 'sidecar', page: 'docs/sidecar.md', schema: SidecarConfigSchema },
  { name: 'sts', page: 'docs/sts.md', schema: StsConfigSchema },
  { name: 'policy-server', page: 'docs/policy-server.md', schema: PolicyServerConfigSchema },
  { name: 'injector', page: 'docs/kubernetes.md', schema: InjectorConfigSchema },
  { name: 'authz', page: 'docs/authz.md', schema: AuthzConfigSchema },
];

const ROOT = fileURLToPath(new URL('../', import.meta.url));

export function markers(name: string): { readonly open: string; readonly close: string } {
  return { open: `<!-- config-keys:${name} -->`, close: '<!-- /config-keys -->' };
}

/** The page with its table replaced by the one the schema gives; undefined when the page has no markers. */
export function withReference(text: string, reference: ConfigReference): string | undefined {
  const { open, close } = markers(reference.name);
  const start = text.indexOf(open);
  const end = start === -1 ? -1 : text.indexOf(close, start);
  if (end === -1) return undefined;
  return `${text.slice(0, start)}${open}\n${markdownKeys(describeKeys(reference.schema))}\n${text.slice(end)}`;
}

export function pagePath(reference: ConfigReference): string {
  return `${ROOT}${reference.page}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const reference of CONFIG_REFERENCES) {
    const text = readFileSync(pagePath(reference), 'utf8');
    const next = withReference(text, reference);
    if (next === undefined)
      throw new Error(
        `${reference.page}: expected the markers ${markers(reference.name).open} … ${markers(reference.name).close}`,
      );
    if (next !== text) {
      writeFileSync(pagePath(reference), next);
      process.stdout.write(`${reference.page}: configuration reference updated\n`);
    }
  }
}
