/**
 * `npm run format` (Prettier, .prettierrc.json: width 120) and its check in
 * `npm run lint`, on the project's code: TypeScript and JavaScript.
 *
 * While prettier-scope.txt exists, both touch only the files it lists: the
 * tree is reformatted in one commit, when no branch is in flight, not file by
 * file. `npm run format -- --all` is that commit's command: it reformats every
 * file and deletes the list, and from then on the check covers the whole tree.
 *
 *   node scripts/format.ts            format the listed files (or all, once the list is gone)
 *   node scripts/format.ts --check    check them; exits 1 naming each unformatted file
 *   node scripts/format.ts --all      format every file and delete the list
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCOPE = join(ROOT, 'prettier-scope.txt');
const PRETTIER = join(ROOT, 'node_modules/prettier/bin/prettier.cjs');
/** The whole tree: code only (.prettierignore leaves out what tools write). */
const EVERYTHING = ['**/*.{ts,js,mjs}'];

function listed(): string[] | undefined {
  if (!existsSync(SCOPE)) return undefined;
  return readFileSync(SCOPE, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

function prettier(mode: '--check' | '--write', files: readonly string[]): number {
  if (files.length === 0) return 0;
  return (
    spawnSync(process.execPath, [PRETTIER, mode, '--log-level', 'warn', ...files], { cwd: ROOT, stdio: 'inherit' })
      .status ?? 1
  );
}

/**
 * Writes until Prettier's own check passes: on a few constructs its output
 * changes again when formatted a second time (4 files of this tree needed a
 * second pass), and a formatter run must leave a tree that its check passes.
 */
function write(files: readonly string[]): number {
  for (let pass = 0; pass < 3; pass++) {
    const status = prettier('--write', files);
    if (status !== 0) return status;
    if (
      spawnSync(process.execPath, [PRETTIER, '--check', '--log-level', 'silent', ...files], { cwd: ROOT }).status === 0
    )
      return 0;
  }
  return prettier('--check', files);
}

const [mode] = process.argv.slice(2);
if (mode === '--all') {
  const status = write(EVERYTHING);
  if (status === 0) rmSync(SCOPE, { force: true });
  process.exitCode = status;
} else if (mode === undefined) {
  process.exitCode = write(listed() ?? EVERYTHING);
} else if (mode === '--check') {
  const status = prettier('--check', listed() ?? EVERYTHING);
  if (status !== 0)
    process.stderr.write(
      'expected these files to be formatted as Prettier writes them (.prettierrc.json), got the differences above: run npm run format\n',
    );
  process.exitCode = status;
} else {
  process.stderr.write(`expected no argument, --check or --all, got ${mode}\n`);
  process.exitCode = 2;
}
