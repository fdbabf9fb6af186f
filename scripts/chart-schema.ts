/**
 * The Helm chart's schema for the users' identity providers, generated from
 * the injector's (src/injector/config.ts, itself built from the sidecar's
 * and the STS's schema objects), so that the chart, the injector and the
 * sidecar accept the same issuer keys and cannot drift apart again (#24).
 * It writes `properties.sts.properties.externalIssuers` of
 * helm/baton-mesh/values.schema.json; the rest of that file is written by hand.
 * test/deploy/helm.test.ts fails when the committed file is stale.
 *
 *   node scripts/chart-schema.ts          rewrite the fragment
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { InjectorConfigSchema } from '../src/injector/config.ts';

export const CHART_SCHEMA = fileURLToPath(new URL('../helm/baton-mesh/values.schema.json', import.meta.url));

/**
 * A TypeBox schema as plain draft-07 JSON Schema for values: TypeBox's
 * symbols dropped, its keywords kept, and a key with a default no longer
 * required (baton's loader fills it in; a values file need not name it).
 */
export function plainJsonSchema(schema: TSchema): Record<string, unknown> {
  const optionalDefaults = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(optionalDefaults);
    if (typeof node !== 'object' || node === null) return node;
    const out: Record<string, unknown> = Object.fromEntries(
      Object.entries(node).map(([key, value]) => [key, optionalDefaults(value)]),
    );
    const properties = out.properties as Record<string, { default?: unknown }> | undefined;
    if (Array.isArray(out.required) && properties !== undefined) {
      const required = (out.required as string[]).filter((key) => properties[key]?.default === undefined);
      if (required.length > 0) out.required = required;
      else delete out.required;
    }
    return out;
  };
  return optionalDefaults(JSON.parse(JSON.stringify(schema))) as Record<string, unknown>;
}

/** The fragment as generated: the injector's `sidecar.externalIssuers`, which the chart passes to the injector and the STS. */
export function externalIssuersFragment(): Record<string, unknown> {
  const fragment = plainJsonSchema(InjectorConfigSchema.properties.sidecar.properties.externalIssuers);
  return {
    ...fragment,
    description: `${String(fragment.description)}. Generated from the injector's schema by scripts/chart-schema.ts: do not edit here.`,
  };
}

type ChartSchema = { properties: { sts: { properties: Record<string, unknown> } } };

/** The chart schema with the generated fragment in place, as the file's text. */
export function chartSchemaText(current: string = readFileSync(CHART_SCHEMA, 'utf8')): string {
  const schema = JSON.parse(current) as ChartSchema;
  schema.properties.sts.properties.externalIssuers = externalIssuersFragment();
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (import.meta.main) {
  const text = chartSchemaText();
  const stale = text !== readFileSync(CHART_SCHEMA, 'utf8');
  writeFileSync(CHART_SCHEMA, text);
  process.stdout.write(
    stale
      ? 'helm/baton-mesh/values.schema.json: externalIssuers regenerated\n'
      : 'helm/baton-mesh/values.schema.json: up to date\n',
  );
}
