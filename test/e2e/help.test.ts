/**
 * Every command's and every sub-subcommand's `--help` (and `-h`) prints its
 * usage on stdout and exits 0, as the README promises, run as real
 * processes. The list comes from the CLI itself (main.ts's COMMANDS and each
 * command's `subcommands`), so a new command or subcommand is covered
 * without an edit here. Help never runs the command: with `--help` after
 * other arguments, nothing starts and nothing is read from stdin.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMANDS } from '../../src/cli/main.ts';
import { runBaton } from '../helpers/process.ts';

const invocations: string[][] = [['--help'], ['help'], ['-h']];
for (const [name, entry] of Object.entries(COMMANDS)) {
  invocations.push([name, '--help'], [name, '-h']);
  for (const sub of (await entry.load()).subcommands ?? []) invocations.push([name, sub, '--help'], [name, sub, '-h']);
}

describe('baton … --help, for every command and subcommand', { timeout: 180_000 }, () => {
  it('covers the subcommands users reach for: token check, demo app and idp, sts hash-secret, policy-server keygen, every policy subcommand', () => {
    const listed = new Set(invocations.map((args) => args.filter((a) => !a.startsWith('-')).join(' ')));
    for (const expected of [
      'token check',
      'demo app',
      'demo idp',
      'sts hash-secret',
      'policy-server keygen',
      'policy check',
      'policy explain',
      'policy graph',
      'policy diff',
      'policy observed',
      'policy suggest',
    ])
      assert.ok(listed.has(expected), expected);
  });

  for (const args of invocations) {
    it(`baton ${args.join(' ')} exits 0 with its usage on stdout`, async () => {
      const { code, stdout, stderr } = await runBaton(args);
      assert.equal(code, 0, stderr);
      assert.equal(stderr, '');
      const words = args.filter((a) => !a.startsWith('-') && a !== 'help');
      // The usage of the command asked for: `Usage: baton token check …`, `Usage: baton demo …` for demo app.
      assert.match(
        stdout,
        new RegExp(`^Usage: baton ${words.length === 0 ? '<command>' : words[0]}(\\s|$)`, 'm'),
        stdout.slice(0, 300),
      );
      if (words[0] !== 'demo' && words[0] !== 'token' && words.length === 2)
        assert.match(stdout, new RegExp(`^Usage: baton ${words.join(' ')}(\\s|$)`, 'm'));
    });
  }
});
