// The start-up fast path of option parsing (lib/quick-args.ts) against yargs, the reference:
// every reader command, every option it declares (read from its own --help), in both spellings,
// run with HP_CHECK_ARGS=1, which parses each command line both ways and fails on a difference.
// Plus the command lines the fast path must leave to yargs, and --help outside English.

import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { englishLocale, quickHelp, quickParse, quickSpec, type QuickOption } from '../../lib/quick-args.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const READERS = ['events', 'stats', 'history', 'snapshot', 'collapse', 'chart', 'pprof', 'flow', 'diff', 'report'];
const ENV = { ...process.env, HP_CHECK_ARGS: '1', LC_ALL: 'C', LANG: 'C', HP_DEBUG: '' };

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = ENV): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', `hp-${cmd}.js`), ...args], { env, encoding: 'utf8', input: '' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface HelpOption {
  name: string;
  short?: string;
  type?: string;
  choices?: string[];
}

/** The options a command's --help lists (what the fast path must parse like yargs). */
function helpOptions(help: string): HelpOption[] {
  const out: HelpOption[] = [];
  for (const line of help.split('\n')) {
    const m = /^ {2}(?:-([a-zA-Z]), )?\s*--([a-z0-9-]+)\s.*?((?:\s+\[[^\]]*\])*)$/.exec(line);
    if (!m) continue;
    const o: HelpOption = { name: m[2]! };
    if (m[1]) o.short = m[1];
    const type = /\[(boolean|string|number|array)\]/.exec(m[3]!);
    if (type) o.type = type[1];
    const choices = /\[choices: ([^\]]*)\]/.exec(m[3]!);
    if (choices) o.choices = JSON.parse(`[${choices[1]}]`) as string[];
    out.push(o);
  }
  return out;
}

for (const cmd of READERS) {
  t.test(`hp-${cmd}: --help and every option, without yargs and as yargs`, async (t) => {
    const help = run(cmd, ['--help']);
    t.equal(help.status, 0);
    t.match(help.stderr, /HP_CHECK_ARGS: --help without yargs, as yargs prints it/);
    t.notMatch(help.stderr, /differs|internal error/);
    const version = run(cmd, ['--version']);
    t.equal(version.status, 0);
    t.match(version.stderr, /HP_CHECK_ARGS: --version without yargs/);
    const options = helpOptions(help.stdout).filter((o) => !['help', 'version', 'completion'].includes(o.name) && o.type !== 'array');
    t.ok(options.length >= 2, 'options read from --help');
    // hp-pprof's --at conflicts with --alloc/--from/--to: those go in a line of their own.
    const apart = cmd === 'pprof' ? new Set(['at']) : new Set<string>();
    // --width takes 24 to 1000 columns: 3 would be a usage error, not a parse.
    const value = (o: HelpOption): string => o.choices?.[o.choices.length - 1] ?? (o.name === 'width' ? '30' : o.type === 'number' ? '5' : '3');
    const spelled = (o: HelpOption, form: number): string[] => {
      if (o.type === 'boolean') return form === 0 ? [o.short ? `-${o.short}` : `--${o.name}`] : [`--no-${o.name}`];
      return form === 0 ? [o.short ? `-${o.short}` : `--${o.name}`, value(o)] : [`--${o.name}=${value(o)}`];
    };
    const lines: string[][] = [['x']];
    for (const form of [0, 1]) {
      lines.push(['run', ...options.filter((o) => !apart.has(o.name)).flatMap((o) => spelled(o, form))]);
      for (const name of apart) lines.push([...options.filter((o) => o.name === name).flatMap((o) => spelled(o, form)), 'run']);
    }
    for (const argv of lines) {
      const r = run(cmd, argv);
      t.notMatch(r.stderr, /parsed differently|internal error/, argv.join(' '));
      t.match(r.stderr, /HP_CHECK_ARGS: parsed without yargs, as yargs parses it/, `${argv.join(' ')}: the fast path answered`);
    }
  });
}

t.test('hp-record: its options without yargs and as yargs (each line stops at a usage error after parsing)', async (t) => {
  for (const argv of [['--help'], ['--version']]) {
    const r = run('record', argv);
    t.equal(r.status, 0);
    t.match(r.stderr, /HP_CHECK_ARGS: --\w+ without yargs/);
  }
  const lines = [
    ['-q', '--force', '--mode', 'stats', '--follow-fork', '--sample-bytes', '512K', '-o', 'x', '--python', 'python3', '--mark-signal', 'USR1', 'x.py'],
    ['--no-force', '--mode=stats', '--sample={}', '--no-native', '--output=x', 'x.py', '--mode', 'profile'],
  ];
  for (const argv of lines) {
    const r = run('record', argv);
    t.equal(r.status, 2, argv.join(' '));
    t.match(r.stderr, /HP_CHECK_ARGS: parsed without yargs, as yargs parses it/, argv.join(' '));
    t.match(r.stderr, /--mode stats counts every allocation/);
  }
});

t.test('command lines left to yargs give yargs answers (errors, numbers, repeats, locales)', async (t) => {
  const cases: Array<[string, string[], RegExp, number]> = [
    ['snapshot', ['run', '--tpo', '3'], /unknown option: --tpo; did you mean --top\?/, 2],
    ['snapshot', ['run', '--top'], /Not enough arguments following: top/, 2],
    ['snapshot', ['run', '--group-by', 'nope'], /Invalid values:/, 2],
    ['history', ['run', '--granularity', 'abc'], /--granularity 'abc': expected a number/, 2],
    ['pprof', ['run', '--at', '1', '--alloc'], /mutually exclusive/, 2],
    ['events', ['--completion'], /^$/, 0],
  ];
  for (const [cmd, argv, err, status] of cases) {
    const r = run(cmd, argv);
    t.equal(r.status, status, argv.join(' '));
    t.match(r.stderr, err, argv.join(' '));
    t.notMatch(r.stderr, /HP_CHECK_ARGS/, `${argv.join(' ')}: left to yargs`);
  }
  const de = run('stats', ['--help'], { ...ENV, LC_ALL: 'de_DE.UTF-8' });
  t.match(de.stdout, /Optionen:/);
  t.notMatch(de.stderr, /HP_CHECK_ARGS/);
});

t.test('quickParse: plain command lines only', async (t) => {
  const base: Array<[string, QuickOption]> = [['quiet', { alias: 'q', type: 'boolean', default: false, describe: 'q' }]];
  const spec = quickSpec('hp-t', '$0 X', [], base, [
    ['option', ['top', { type: 'string', requiresArg: true, coerce: (v: unknown) => Number(v), describe: 't' }]],
    ['option', ['group-by', { requiresArg: true, choices: ['trace', 'line'], default: 'trace', describe: 'g' }]],
    ['option', ['width', { type: 'number', describe: 'w' }]],
  ])!;
  t.ok(spec);
  t.same(quickParse(spec, ['run', '--top', '4', '-q', '--group-by=line']), { _: ['run'], top: 4, quiet: true, q: true, 'group-by': 'line', groupBy: 'line', $0: 'hp-t' });
  for (const argv of [['5'], ['run', '--', 'x'], ['run', '--top'], ['--top', '-1'], ['--top', '1', '--top', '2'], ['--width', '0x10'], ['--width', '1e3'], ['-qx'], ['--quiet', 'false'], ['--group-by', '1'], ["--top='3'"], ['--groupBy', 'line'], ['--nope']]) {
    t.equal(quickParse(spec, argv), null, argv.join(' '));
  }
  t.equal(quickSpec('hp-t', '$0', [], base, [['parserConfiguration', [{ 'camel-case-expansion': false }]]]), null, 'unknown configuration: yargs');
  const halting = quickSpec('hp-t', '$0', [], base, [['parserConfiguration', [{ 'halt-at-non-option': true, 'populate--': true }]]])!;
  t.same(quickParse(halting, ['-q']), { _: [], quiet: true, q: true, $0: 'hp-t' });
  t.equal(quickParse(halting, ['-q', 'x.py']), null, 'halt-at-non-option: a positional goes to yargs');
  t.equal(quickSpec('hp-t', '$0', [], base, [['option', ['n', { describe: 'untyped, no choices' }]]]), null, 'untyped option: yargs');
  t.equal(quickSpec('hp-t', '$0', [], base, [['command', ['x']]]), null, 'unknown call: yargs');
  t.equal(quickHelp(spec, { LANG: 'fr_FR.UTF-8' }), null);
  t.ok(englishLocale({}) && englishLocale({ LANG: 'en_GB.UTF-8' }) && englishLocale({ LC_ALL: 'C' }) && !englishLocale({ LANG: 'pt_BR' }));
});
