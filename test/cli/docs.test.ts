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

t.test('no line of text in a manual page starts with a control character', async (t) => {
  // A line starting with . or ' is a request: ".hpd is the process's RSS at attach" is the
  // unknown macro "hpd", and man drops the whole line without a word (hpx(5) lost two).
  // Text that starts with a dot is written \&.hpd.
  const macros = new Set(['TH', 'SH', 'SS', 'PP', 'LP', 'P', 'TP', 'IP', 'HP', 'RS', 'RE', 'B', 'I', 'BR', 'BI', 'IB', 'IR', 'RB', 'RI', 'SM', 'SB', 'nf', 'fi', 'br', 'sp', 'TS', 'TE', 'EX', 'EE', 'UR', 'UE', 'in', 'ti', 'ad', 'na', 'ne', 'ft']);
  const dir = join(root, 'man');
  for (const name of readdirSync(dir).filter((n) => /\.[157]$/.test(n))) {
    const lines = readFileSync(join(dir, name), 'utf8').split('\n');
    const bad = lines
      .map((l, i) => [i + 1, l] as const)
      .filter(([, l]) => /^[.']/.test(l) && !/^[.']\s*\\"/.test(l) && !/^[.']\s*$/.test(l) && !macros.has(/^[.']\s*(\S+)/.exec(l)![1]!));
    t.same(bad, [], `${name}: lines that roff reads as unknown requests`);
  }
});

t.test('hp-diff --help names the grouping it uses by default', async (t) => {
  const help = spawnSync(process.execPath, [join(root, 'bin', 'hp-diff.js'), '--help'], { encoding: 'utf8' }).stdout;
  t.equal(GROUP_BY_DEFAULT, 'trace');
  t.match(help, /\[default: "trace"\]/);
  t.match(help, /by site \(the whole stack by default/, 'the description says the whole stack');
  t.notMatch(help, /innermost line of code by default/);
});

t.test("every option in a command's --help has an entry in its manual page's OPTIONS, and every entry is in --help", async (t) => {
  const commands = readdirSync(join(root, 'bin')).filter((n) => /^hp-[a-z]+\.js$/.test(n) && n !== 'hp-demo.js').map((n) => n.replace(/\.js$/, ''));
  t.ok(commands.includes('hp-history'));
  for (const command of commands) {
    const help = spawnSync(process.execPath, [join(root, 'bin', `${command}.js`), '--help'], { encoding: 'utf8' }).stdout;
    const inHelp = new Set([...help.matchAll(/^ {2}(?:-\w, |-(\w) {2}|    )(?:--([a-z0-9-]+))?/gm)].map((m) => m[2] ?? m[1]).filter((o): o is string => o !== undefined));
    for (const base of ['help', 'version', 'completion', 'quiet']) inHelp.delete(base);
    const page = readFileSync(join(root, 'man', `${command}.1`), 'utf8');
    const options = page.split(/^\.SH OPTIONS$/m)[1]!.split(/^\.SH /m)[0]!.split('\n');
    const inMan = new Set<string>();
    options.forEach((line, i) => {
      if (line !== '.TP') return;
      const tag = options[i + 1]!;
      for (const m of tag.matchAll(/\\-\\-(?:\[no\\-\])?([a-z0-9\\-]+)|(?:^|[ "])\\-([a-zA-Z])\b/g)) inMan.add((m[1] ?? m[2]!).replace(/\\-/g, '-'));
    });
    const missing = [...inHelp].filter((o) => !inMan.has(o));
    const extra = [...inMan].filter((o) => o.length > 1 && !['help', 'version', 'completion', 'quiet'].includes(o) && !inHelp.has(o) && !inHelp.has(o.replace(/^no-/, '')));
    t.same(missing, [], `${command}: in --help, not in ${command}(1) OPTIONS`);
    t.same(extra, [], `${command}: in ${command}(1) OPTIONS, not in --help`);
  }
  const history = spawnSync(process.execPath, [join(root, 'bin', 'hp-history.js'), '--help'], { encoding: 'utf8' }).stdout;
  t.match(history, /^ {6}--chart +The chart even into a pipe/m, 'hp-history --chart, used in its examples, is in --help');
});
