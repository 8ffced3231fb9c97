// The manual pages and --help say what the commands do: roff text that renders as written,
// and help texts that name the defaults the options really have.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { GROUP_BY_DEFAULT } from '../../lib/cmd/common.js';
import { root } from '../fixtures/analysis/run.js';

t.test('no manual page has a roff comment inside a line of text', async (t) => {
  // \" starts a comment anywhere on a line, so `.BR "\"type\"..."` drops the rest of the line
  // (hp-diff(1) read "The last line,  has the same fields"); \(dq is a double quote.
  const dir = join(root, 'man');
  for (const name of readdirSync(dir).filter((n) => /\.[157]$/.test(n))) {
    const lines = readFileSync(join(dir, name), 'utf8').split('\n');
    const inText = lines.map((l, i) => [i + 1, l] as const).filter(([, l]) => l.includes('\\"') && !/^\.\s*\\"/.test(l));
    t.same(inText.map(([n]) => n), [], `${name}: lines with \\" in text`);
  }
});

t.test('hp-diff --help names the grouping it uses by default', async (t) => {
  const help = spawnSync(process.execPath, [join(root, 'bin', 'hp-diff.js'), '--help'], { encoding: 'utf8' }).stdout;
  t.equal(GROUP_BY_DEFAULT, 'trace');
  t.match(help, /\[default: "trace"\]/);
  t.match(help, /by site \(the whole stack by default/, 'the description says the whole stack');
  t.notMatch(help, /innermost line of code by default/);
});
