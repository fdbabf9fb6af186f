/** The committed seed corpus: one file per input under fuzz/corpus/<target>/. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = fileURLToPath(new URL('./corpus/', import.meta.url));

export function readCorpus(target: string): Array<{ name: string; input: string }> {
  const dir = join(CORPUS_DIR, target);
  return readdirSync(dir)
    .filter((name) => !name.startsWith('.'))
    .sort()
    .map((name) => ({ name, input: readFileSync(join(dir, name), 'utf8') }));
}
