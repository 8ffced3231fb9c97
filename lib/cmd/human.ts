// The human views: what the readers show on a terminal instead of NDJSON (cli-table3 tables
// at most the terminal's width: rank, size, its 95% interval, share, count, site), and the small
// formatters they share. Data for programs stays NDJSON; these are for people.

import { escapeControls } from '../escape.js';
import { cliTable } from '../lazy.js';
import { BYTE_UNITS, byteUnit, formatBytes } from '../cli.js';

/** Columns available: $COLUMNS when set, else the terminal's width, else 100. */
export function terminalWidth(): number {
  const env = Number(process.env.COLUMNS);
  if (Number.isInteger(env) && env >= 20) return env;
  const tty = process.stdout.isTTY ? process.stdout.columns : 0;
  return tty && tty >= 20 ? tty : 100;
}

/** A 95% interval [lo, hi] as the NDJSON carries it (`_lo`, `_hi`: whole, rounded outwards); null when exact. */
export type Interval = readonly [number, number] | null;

/**
 * A 95% interval of bytes for people, the one way every terminal view and message writes it:
 * `9.6 .. 24.7 MiB` (the unit once when both limits are written in it), `0 B .. 236.1 KiB`,
 * signed for changes (`-1.2 KiB .. +3.4 MiB`). Limits that one decimal would write alike get
 * more decimals (`49.993 .. 50.008 MiB`), so that a narrow interval still reads as one.
 */
export function formatByteInterval(lo: number, hi: number, signed = false): string {
  const sign = (n: number, text: string): string => (signed && n > 0 ? `+${text}` : text);
  const u = byteUnit(lo);
  if (u !== byteUnit(hi)) {
    const f = signed ? formatByteChange : formatBytes;
    return `${f(lo)} .. ${f(hi)}`;
  }
  if (u === 0) return `${sign(lo, String(Math.round(lo)))} .. ${sign(hi, String(Math.round(hi)))} B`;
  const scale = 1024 ** u;
  for (let d = 1; d <= 3; d++) {
    const a = (lo / scale).toFixed(d);
    const b = (hi / scale).toFixed(d);
    if (a !== b || lo === hi) return `${sign(lo, a)} .. ${sign(hi, b)} ${BYTE_UNITS[u]}`;
  }
  const bytes = (n: number): string => sign(n, Math.round(n).toLocaleString('en-US'));
  return `${bytes(lo)} .. ${bytes(hi)} B`;
}

/** A 95% interval of a count: `91,457 .. 259,825`. */
export function formatCountInterval(lo: number, hi: number): string {
  return `${formatCount(lo)} .. ${formatCount(hi)}`;
}

/** `15.9 MiB (95%: 9.6 .. 24.7 MiB)`, or the size alone when exact: for a line of text (tables have a column for it). */
export function bytesWithInterval(bytes: number, interval: Interval): string {
  const size = formatBytes(Math.max(0, bytes));
  return interval ? `${size} (95%: ${formatByteInterval(interval[0], interval[1])})` : size;
}

/** What an interval column holds for an estimate with no uncertainty (drawn at p = 1). */
export const EXACT = 'exact';

/** A count for people: 1,234,567; estimates are rounded. */
export function formatCount(n: number): string {
  return Math.round(Math.max(0, n)).toLocaleString('en-US');
}

/**
 * A share of a total as a percentage with one decimal; a share that one decimal would write as 0
 * or as 100 without being either is <0.1% or >99.9% (a site beside others is not 100.0% of the heap).
 */
export function formatShare(part: number, total: number): string {
  if (!(total > 0)) return '';
  const pct = (100 * Math.max(0, part)) / total;
  if (pct > 0 && pct < 0.1) return '<0.1%';
  const text = pct.toFixed(1);
  return text === '100.0' && pct < 100 ? '>99.9%' : `${text}%`;
}

/**
 * A long site label cut to `width`, keeping what tells sites apart. A label is "function
 * (path:line)", perhaps followed by " [domain]" or " [domain: symbol (library)]" (lib/model/sites.ts):
 * the function and the end of the path stay (`f (…/site-packages/x.py:12)`), then the bracket keeps
 * only its domain (`[native]`), then a long function keeps its start (`a_generated_na… (…/x.py:12)`);
 * otherwise the end of the label. The process of a label split --by pid (`pid 4242: f (x.py:3)`,
 * lib/model/sites.ts) stays: it is what tells those rows apart. Every label a terminal view shows
 * goes through here, so this is where its control characters are escaped.
 */
export function clip(label: string, width: number): string {
  // Control characters from the profile are written out (\x1b) before anything is measured.
  const text = escapeControls(label);
  if (width <= 1) return text.slice(0, Math.max(0, width));
  if (text.length <= width) return text;
  const proc = /^pid \d+: /.exec(text);
  if (proc && width - proc[0].length >= 12) return proc[0] + clip(text.slice(proc[0].length), width - proc[0].length);
  const m = /^(.*?) \(([^()]*)\)( \[.*\])?$/.exec(text);
  if (m) {
    const [, fn, where, tail = ''] = m as unknown as [string, string, string, string | undefined];
    // The path may lose its start down to its last "/name:line" (a name without a directory,
    // such as <frozen importlib._bootstrap>:241, to its last 12 characters).
    const slash = where.lastIndexOf('/');
    const least = slash >= 0 ? where.length - slash : Math.min(where.length, 12);
    const short = tail.replace(/^ \[([a-z]+)[:\]].*$/, ' [$1]');
    for (const suffix of new Set([tail, short])) {
      const room = width - fn.length - suffix.length - 3; // " (" and ")"
      if (room >= where.length) return `${fn} (${where})${suffix}`;
      if (room - 1 >= least) return `${fn} (…${where.slice(where.length - (room - 1))})${suffix}`;
    }
    // A function name too long for the rest (a generated or mangled one) keeps its start, as
    // long as a readable part of it fits beside the file name: the start says what it is, its
    // end rarely does.
    const place = least >= where.length ? where : `…${where.slice(where.length - least)}`;
    const fnRoom = width - short.length - 3 - place.length;
    if (fnRoom >= 12) return `${fn.slice(0, fnRoom - 1)}… (${place})${short}`;
  }
  return `…${text.slice(text.length - width + 1)}`;
}

export interface SiteRow {
  rank: number;
  bytes: number;
  /** The bytes' 95% interval, as in the site's NDJSON line. */
  interval: Interval;
  count: number;
  site: string;
  /** A caller that tells this site from another of the same label, shown on a line below it. */
  via?: string;
  /** The thread that tells it apart where the callers do not (`thread 2`), on that line too. */
  thread?: string;
}

/**
 * The table of sites: rank, size, its 95% interval, share of `totalBytes`, count, site (fitted to
 * the width), with a row's `via` and `thread` on a second line. Too narrow for the intervals and a readable
 * site, the interval column is left out (the NDJSON has them).
 */
export function sitesTable(rows: SiteRow[], totalBytes: number, width = terminalWidth()): string {
  const cells = rows.map((r) => [String(r.rank), formatBytes(Math.max(0, r.bytes)), r.interval ? formatByteInterval(r.interval[0], r.interval[1]) : EXACT, formatShare(r.bytes, totalBytes), formatCount(r.count)]);
  const below = rows.map((r) => (r.via && r.thread ? `via ${r.via} in ${r.thread}` : r.via ? `via ${r.via}` : r.thread));
  return rankedTable(['#', 'size', '95% interval', 'share', 'count', 'site'], cells, rows.map((r) => r.site), width, below);
}

export interface ChangeRow {
  /** A number, or a label such as TOTAL. */
  rank: number | string;
  change: number;
  /** The change's 95% interval, as in hp-diff's NDJSON (`change_lo`, `change_hi`); null when exact. */
  interval: Interval;
  countChange: number;
  site: string;
  /** As SiteRow's. */
  via?: string;
}

/** `+10.1 MiB`, `-3.0 KiB`, `0 B`. */
export function formatByteChange(n: number): string {
  const r = Math.round(n);
  return r > 0 ? `+${formatBytes(r)}` : r < 0 ? `-${formatBytes(-r)}` : '0 B';
}

/** `+1,234`, `-5`, `0`. */
export function formatCountChange(n: number): string {
  const r = Math.round(n);
  return r > 0 ? `+${r.toLocaleString('en-US')}` : r < 0 ? `-${(-r).toLocaleString('en-US')}` : '0';
}

/**
 * hp-diff's table, laid out as the sites table: rank, change, its 95% interval, share of the
 * total change (signed, of its magnitude: sites that grew against a total that shrank read
 * negative), count change, site.
 */
export function changesTable(rows: ChangeRow[], totalChange: number, width = terminalWidth()): string {
  const share = (c: number): string => {
    if (!(Math.abs(totalChange) >= 0.5)) return '';
    const pct = (100 * c) / Math.abs(totalChange);
    if (Math.abs(Math.round(c)) === 0) return '0.0%';
    return Math.abs(pct) < 0.1 ? (pct > 0 ? '<+0.1%' : '>-0.1%') : `${pct > 0 ? '+' : ''}${pct.toFixed(1)}%`;
  };
  const cells = rows.map((r) => [
    String(r.rank),
    formatByteChange(r.change),
    r.interval ? formatByteInterval(r.interval[0], r.interval[1], true) : EXACT,
    share(r.change),
    formatCountChange(r.countChange),
  ]);
  return rankedTable(['#', 'change', '95% interval', 'share', 'count', 'site'], cells, rows.map((r) => r.site), width, rows.map((r) => r.via && `via ${r.via}`));
}

const SITE_MIN = 12;
/** The column a table leaves out when it is too narrow for it and a readable site. */
const OPTIONAL_COLUMN = '95% interval';

/** Columns taken by the number columns and every border. */
function fixedWidth(head: string[], cells: string[][]): number {
  return head.slice(0, -1).reduce((sum, h, c) => sum + Math.max(h.length, ...cells.map((row) => row[c]!.length)) + 2, 0) + head.length + 1;
}

/**
 * Right-aligned number columns sized to their contents, then the site column taking the rest of
 * the width, or what its longest site needs when that is less. When the numbers leave the site less than SITE_MIN columns, the interval column
 * goes, heading and all.
 */
function rankedTable(head: string[], cells: string[][], sites: string[], width: number, below: (string | undefined)[] = []): string {
  const drop = head.indexOf(OPTIONAL_COLUMN);
  if (drop >= 0 && fixedWidth(head, cells) + SITE_MIN > width) {
    head = head.filter((_, c) => c !== drop);
    cells = cells.map((row) => row.filter((_, c) => c !== drop));
  }
  const numbers = head.length - 1;
  const widths = head.slice(0, numbers).map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)) + 2);
  // Borders: one per column plus one; each cell has one space of padding either side (in widths).
  // At most the terminal's width, and no wider than the longest site needs (a 300-column
  // terminal does not make every row 200 columns of blanks).
  const longest = Math.max(head[numbers]!.length, ...sites.map((s, i) => Math.max(escapeControls(s).length, below[i] ? escapeControls(below[i]!).length + 2 : 0)));
  const siteWidth = Math.max(SITE_MIN, Math.min(width - fixedWidth(head, cells), longest + 2));
  const table = new (cliTable())({
    head,
    colWidths: [...widths, siteWidth],
    colAligns: [...widths.map(() => 'right' as const), 'left' as const],
    style: { head: [], border: [], 'padding-left': 1, 'padding-right': 1 },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    wordWrap: false,
  });
  sites.forEach((site, i) => {
    const second = below[i];
    table.push([...cells[i]!, clip(site, siteWidth - 2) + (second ? `\n${clip(`  ${second}`, siteWidth - 2)}` : '')]);
  });
  return `${table.toString()}\n`;
}
