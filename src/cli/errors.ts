/** The CLI's own errors; bad flags are a `UsageError` (src/cli/command.ts, exit 2). */
import { defineError } from '../core/errors.ts';

/** keygen found a key file already there: overwriting it would cut off every sidecar pinned to it. */
export const KeyFileExistsError = defineError({
  code: 'BATON_KEYGEN_FILE_EXISTS',
  status: 409,
  title: 'Key file already exists',
});
