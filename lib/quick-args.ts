// The start-up fast path of option parsing: yargs (and the dozen modules it requires) costs
// about as much CPU time as Node's own start, and every hp-* command paid it, even for
// `--help`. Here the options a command declared are parsed without yargs when the command line
// is plain (known options, one value each, no number-like or quoted words), and `--help` is
// laid out the way yargs lays it out (English only). Anything else returns null and the
// caller hands the whole command line to yargs, which stays the reference: errors, messages,
// completion, other locales. HP_CHECK_ARGS=1 runs both and fails on any difference (tests).

/** One `.option(name, spec)` as the commands declare it (the subset of yargs' Options they use). */
export interface QuickOption {
  type?: 'string' | 'boolean' | 'number';
  alias?: string | string[];
  default?: unknown;
  describe?: string;
  requiresArg?: boolean;
  choices?: readonly unknown[];
  coerce?: (value: unknown) => unknown;
  hidden?: boolean;
  array?: boolean;
}

/** A command's parser as declared: what parser() in lib/cli.ts set up, then the command's calls. */
export interface QuickSpec {
  name: string;
  usage: string;
  examples: Array<[string, string]>;
  /** In declaration order; the shared ones (quiet, completion, help, version) first. */
  options: Array<[string, QuickOption]>;
  positionalNumbers: boolean;
  /** yargs' halt-at-non-option: the fast path then leaves any positional to yargs. */
  haltAtNonOption: boolean;
  conflicts: Array<[string, string[]]>;
}

const SPEC_KEYS = new Set(['type', 'alias', 'default', 'describe', 'requiresArg', 'choices', 'coerce', 'hidden', 'array']);
const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

const camel = (key: string): string => key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const aliasesOf = (o: QuickOption): string[] => (o.alias === undefined ? [] : Array.isArray(o.alias) ? o.alias : [o.alias]);

/**
 * The spec from parser()'s base options and a command's recorded calls, or null when a call
 * or an option setting is one this module does not reproduce exactly.
 */
export function quickSpec(name: string, usage: string, examples: Array<[string, string]>, base: Array<[string, QuickOption]>, calls: Array<[string, unknown[]]>): QuickSpec | null {
  const spec: QuickSpec = { name, usage, examples, options: [...base], positionalNumbers: true, haltAtNonOption: false, conflicts: [] };
  for (const [method, args] of calls) {
    if (method === 'option' && typeof args[0] === 'string' && typeof args[1] === 'object' && args[1] !== null && args.length === 2) {
      const [key, o] = args as [string, QuickOption];
      if (!NAME.test(key) || spec.options.some(([k, x]) => k === key || aliasesOf(x).includes(key))) return null;
      if (!Object.keys(o).every((k) => SPEC_KEYS.has(k))) return null;
      if (o.type !== undefined && o.type !== 'string' && o.type !== 'boolean' && o.type !== 'number') return null;
      if (!aliasesOf(o).every((a) => NAME.test(a))) return null;
      // An untyped option is safe only with word choices (yargs would turn `5` into a number).
      if (o.type === undefined && !(o.choices && o.choices.every((c) => typeof c === 'string' && !/^[\d.+-]/.test(c)))) return null;
      // yargs-parser turns a number-like coerced value of an untyped option into a number.
      if (o.coerce !== undefined && o.type !== 'string') return null;
      if (o.type === 'boolean' && (o.requiresArg || o.choices)) return null;
      spec.options.push([key, o]);
    } else if ((method === 'strict' || method === 'strictOptions') && (args.length === 0 || typeof args[0] === 'boolean')) {
      // Both only decide which errors yargs reports; errors always go to yargs.
    } else if (method === 'parserConfiguration' && args.length === 1) {
      const config = args[0] as Record<string, unknown>;
      for (const [k, v] of Object.entries(config)) {
        if (k === 'parse-positional-numbers' && typeof v === 'boolean') spec.positionalNumbers = v;
        else if (k === 'halt-at-non-option' && typeof v === 'boolean') spec.haltAtNonOption = v;
        // Without `--` on the command line (always left to yargs) this changes nothing.
        else if (k === 'populate--' && typeof v === 'boolean') continue;
        // Only decides what a repeated option gives: repeats are left to yargs.
        else if (k === 'duplicate-arguments-array' && typeof v === 'boolean') continue;
        else return null;
      }
    } else if (method === 'fail' && args.length === 1 && typeof args[0] === 'function') {
      // Only shapes the messages of failures, and failures are always yargs' to report.
    } else if (method === 'conflicts' && typeof args[0] === 'string' && args.length === 2) {
      const others = Array.isArray(args[1]) ? (args[1] as string[]) : [args[1] as string];
      spec.conflicts.push([args[0], others]);
    } else return null;
  }
  // yargs also counts a default as set when it checks conflicts: keep to options without one.
  for (const [a, others] of spec.conflicts) {
    for (const k of [a, ...others]) {
      const o = spec.options.find(([key]) => key === k)?.[1];
      if (!o || o.default !== undefined) return null;
    }
  }
  return spec;
}

/**
 * argv parsed as yargs would parse it for this spec (the same object: every option under its
 * name, its aliases and their camelCase forms, defaults, coerced values, `_` and `$0`), or null
 * when the command line is not one this fast path is sure about.
 */
export function quickParse(spec: QuickSpec, argv: string[]): Record<string, unknown> | null {
  const byName = new Map<string, [string, QuickOption]>();
  for (const entry of spec.options) for (const n of [entry[0], ...aliasesOf(entry[1])]) byName.set(n, entry);
  const given = new Map<string, unknown>();
  const positionals: Array<string | number> = [];
  const plainValue = (v: string | undefined): v is string => v !== undefined && v !== '' && !v.startsWith('-') && !/^["']/.test(v);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-' || !arg.startsWith('-')) {
      if (/^["']/.test(arg) || spec.haltAtNonOption) return null;
      if (spec.positionalNumbers && /^[\d.]/.test(arg)) return null;
      positionals.push(arg);
      continue;
    }
    let m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg) ?? /^-([a-zA-Z])$/.exec(arg);
    if (!m) return null;
    let flag = m[1]!;
    let inline = m[2];
    let negated = false;
    if (!byName.has(flag) && flag.startsWith('no-') && byName.get(flag.slice(3))?.[1].type === 'boolean' && inline === undefined) {
      flag = flag.slice(3);
      negated = true;
    }
    const entry = byName.get(flag);
    if (!entry) return null;
    const [key, o] = entry;
    if (given.has(key) || key === 'help' || key === 'version' || key === 'completion') return null;
    if (o.array) return null;
    let value: unknown;
    if (o.type === 'boolean') {
      if (inline !== undefined) return null;
      if (argv[i + 1] === 'true' || argv[i + 1] === 'false') return null;
      value = !negated;
    } else {
      const text = inline ?? argv[++i];
      if (!plainValue(text)) return null;
      if (o.type === 'number') {
        if (!/^\d+(?:\.\d+)?$/.test(text) || /^0\d/.test(text)) return null;
        value = Number(text);
      } else value = text;
      if (o.choices && !o.choices.includes(value)) return null;
    }
    given.set(key, value);
  }
  for (const [a, others] of spec.conflicts) if (given.has(a) && others.some((k) => given.has(k))) return null;
  const out: Record<string, unknown> = { _: positionals };
  for (const [key, o] of spec.options) {
    let value = given.has(key) ? given.get(key) : o.default;
    if (value === undefined) continue;
    // Coerced like yargs-parser does: the value given, else the default.
    if (o.coerce) {
      try {
        value = o.coerce(value);
      } catch {
        return null;
      }
    }
    for (const n of [key, ...aliasesOf(o)]) {
      out[n] = value;
      out[camel(n)] = value;
    }
  }
  out.$0 = spec.name;
  return out;
}

/** True when yargs would print its messages in English (it reads the locale from the environment). */
export function englishLocale(env: NodeJS.ProcessEnv = process.env): boolean {
  const locale = (env.LC_ALL || env.LC_MESSAGES || env.LANG || env.LANGUAGE || 'en_US').replace(/[.:].*/, '');
  return locale === '' || locale === 'C' || locale === 'POSIX' || /^en(?:[_-]|$)/.test(locale);
}

/** The text yargs prints for `--help` (without the final newline), or null outside English. */
export function quickHelp(spec: QuickSpec, env: NodeJS.ProcessEnv = process.env): string | null {
  if (!englishLocale(env)) return null;
  const lines: string[] = [...spec.usage.replace(/\$0/g, spec.name).split('\n'), ''];
  const shown = spec.options.filter(([, o]) => !o.hidden);
  if (shown.some(([, o]) => typeof o.describe !== 'string' || o.describe === '')) return null;
  const switchText = (key: string, o: QuickOption): string =>
    [key, ...aliasesOf(o)]
      .sort((a, b) => a.length - b.length)
      .map((n) => (n.length === 1 ? `-${n}` : `--${n}`))
      .join(', ');
  const switches = shown.map(([k, o]) => switchText(k, o));
  const anyShort = switches.some((s) => !s.startsWith('--'));
  const padded = switches.map((s) => (anyShort && s.startsWith('--') ? `    ${s}` : s));
  const width = Math.max(...padded.map((s) => s.length));
  lines.push('Options:');
  shown.forEach(([, o], i) => {
    const extra = [
      o.array ? '[array]' : o.type ? `[${o.type}]` : null,
      o.choices ? `[choices: ${o.choices.map((c) => JSON.stringify(c)).join(', ')}]` : null,
      o.default === undefined ? null : `[default: ${typeof o.default === 'string' ? `"${o.default}"` : typeof o.default === 'object' ? JSON.stringify(o.default) : String(o.default)}]`,
    ]
      .filter((x) => x !== null)
      .join(' ');
    lines.push(`  ${padded[i]!.padEnd(width)}  ${o.describe!}${extra ? `  ${extra}` : ''}`);
  });
  if (spec.examples.length > 0) {
    lines.push('', 'Examples:');
    const examples = spec.examples.map(([c, d]) => [c.replace(/\$0/g, spec.name), d] as const);
    const w = Math.max(...examples.map(([c]) => c.length));
    for (const [c, d] of examples) lines.push(d === '' ? `  ${c}` : `  ${c.padEnd(w)}  ${d}`);
  }
  return lines
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\s*$/, '');
}
