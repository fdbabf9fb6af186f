/**
 * The `BATON_*` variables each long-running part reads, derived from its
 * schema: what a process leaves alone when it is another part's
 * (src/config/variables.ts). Lives with the CLI, which knows every part;
 * src/config/ knows none.
 */
import type { TObject } from '@sinclair/typebox';
import { envNames } from '../config/variables.ts';
import { InjectorConfigSchema } from '../injector/config.ts';
import { PolicyServerConfigSchema } from '../policy/distribution/config.ts';
import { SidecarConfigSchema } from '../sidecar/config.ts';
import { StsConfigSchema } from '../sts/config.ts';

export const PART_SCHEMAS: Readonly<Record<string, TObject>> = {
  sidecar: SidecarConfigSchema,
  sts: StsConfigSchema,
  'policy-server': PolicyServerConfigSchema,
  injector: InjectorConfigSchema,
};

/** Every part's variables, each with the parts that read it ("the sidecar and the sts"). */
export function partVariables(): ReadonlyMap<string, string> {
  const readers = new Map<string, string[]>();
  for (const [part, schema] of Object.entries(PART_SCHEMAS))
    for (const name of envNames(schema)) readers.set(name, [...(readers.get(name) ?? []), part]);
  return new Map([...readers].map(([name, parts]) => [name, `the ${parts.join(' and the ')}`]));
}
