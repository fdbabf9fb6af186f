/** The policy tooling's errors: what `baton policy graph` refuses. An audit log `policy observed` cannot read is telemetry's (src/telemetry/errors.ts). */
import { defineError } from '../../core/errors.ts';

export const GraphvizUnavailableError = defineError({
  code: 'BATON_GRAPHVIZ_UNAVAILABLE',
  status: 500,
  title: 'Graphviz (WASM) could not be loaded',
});
