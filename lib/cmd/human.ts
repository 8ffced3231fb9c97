// The human views: what the readers show on a terminal instead of NDJSON (cli-table3 tables
// sized to the terminal: rank, size with its 95% interval, share, count, site), and the small
// formatters they share. Data for programs stays NDJSON; these are for people.

import { escapeControls } from '../escape.js';
import { cliTable } from '../lazy.js';
import { formatBytes } from '../cli.js';
import { halfWidth95 } from '../format/weights.js';

/** Columns available: $COLUMNS when set, else the terminal's width, else 100. */
export function terminalWidth(): number {
  const env = Number(process.env.COLUMNS);
  if (Number.isInteger(env) && env >= 20) return env;
  const tty = process.stdout.isTTY ? process.stdout.columns : 0;
  return tty && tty >= 20 ? tty : 100;
}

/** `10.1 MiB ± 512.0 KiB`, or just the size when exact (sampled at p = 1). */
export function bytesWithInterval(bytes: number, variance: number): string {
  const h = halfWidth95(variance);
  const size = formatBytes(Math.max(0, bytes));
  return h > 0 ? `${size} ± ${formatBytes(h)}` : size;
}

/** A count for people: 1,234,567; estimates are rounded. */
export function formatCount(n: number): string {
  return Math.round(Math.max(0, n)).toLocaleString('en-US');
}

/** A share of a total as a percentage with one decimal (or < 0.1%). */
export function formatShare(part: number, total: number): string {
  if (!(total > 0)) return '';
  const pct = (100 * Math.max(0, part)) / total;
  return pct > 0 && pct < 0.1 ? '<0.1%' : `${pct.toFixed(1)}%`;
}

/**
 * A long site label cut to `width`, keeping what tells sites apart. A label is "function
 * (path:line)", perhaps followed by " [domain]" or " [domain: symbol (library)]" (lib/model/sites.ts):
 * the function and the end of the path stay (`f (…/site-packages/x.py:12)`), then the bracket keeps
 * only its domain (`[native]`); otherwise the end of the label. Every label a terminal view shows
 * goes through here, so this is where its control characters are escaped.
 */
export function clip(label: string, width: number): string {
  // Control characters from the profile are written out (\x1b) before anything is measured.
  const text = escapeControls(label);
  if (width <= 1) return text.slice(0, Math.max(0, width));
  if (text.length <= width) return text;
  const m = /^(.*?) \(([^()]*)\)( \[.*\])?$/.exec(text);
  if (m) {
    const [, fn, where, tail = ''] = m as unknown as [string, string, string, string | undefined];
    // The path may lose its start down to its last "/name:line" (a name without a directory,
    // such as <frozen importlib._bootstrap>:241, to its last 12 characters).
    const slash = where.lastIndexOf('/');
    const least = slash >= 0 ? where.length - slash : Math.min(where.length, 12);
    for (const suffix of new Set([tail, tail.replace(/^ \[([a-z]+)[:\]].*$/, ' [$1]')])) {
      const room = width - fn.length - suffix.length - 3; // " (" and ")"
      if (room >= where.length) return `${fn} (${where})${suffix}`;
      if (room - 1 >= least) return `${fn} (…${where.slice(where.length - (room - 1))})${suffix}`;
    }
  }
  return `…${text.slice(text.length - width + 1)}`;
}

export interface SiteRow {
  rank: number;
  bytes: number;
  bytesVar: number;
  count: number;
  site: string;
  /** A caller that tells this site from another of the same label, shown on a line below it. */
  via?: string;
}

/**
 * The table of sites: rank, size ± 95% interval, share of `totalBytes`, count, site (fitted to the
 * width), with a row's `via` on a second line.
 */
export function sitesTable(rows: SiteRow[], totalBytes: number, width = terminalWidth()): string {
  const cells = rows.map((r) => [String(r.rank), bytesWithInterval(r.bytes, r.bytesVar), formatShare(r.bytes, totalBytes), formatCount(r.count)]);
  return rankedTable(['#', 'size (95%)', 'share', 'count', 'site'], cells, rows.map((r) => r.site), width, rows.map((r) => r.via));
}

export interface ChangeRow {
  /** A number, or a label such as TOTAL. */
  rank: number | string;
  change: number;
  /** Half-width of the change's 95% interval (0: exact). */
  halfWidth: number;
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
 * hp-diff's table, laid out as the sites table: rank, change ± 95% interval, share of the total
 * change (signed, of its magnitude: sites that grew against a total that shrank read negative),
 * count change, site.
 */
export function changesTable(rows: ChangeRow[], totalChange: number, width = terminalWidth()): string {
  const share = (c: number): string => {
    if (!(Math.abs(totalChange) >= 0.5)) return '';
    const pct = (100 * c) / Math.abs(totalChange);
    if (Math.abs(Math.round(c)) === 0) return '0.0%';
    return Math.abs(pct) < 0.1 ? (pct > 0 ? '<+0.1%' : '>-0.1%') : `${pct > 0 ? '+' : ''}${pct.toFixed(1)}%`;
  };
  const cellsOf = (withInterval: boolean): string[][] =>
    rows.map((r) => [
      String(r.rank),
      withInterval && r.halfWidth >= 0.5 ? `${formatByteChange(r.change)} ± ${formatBytes(Math.round(r.halfWidth))}` : formatByteChange(r.change),
      share(r.change),
      formatCountChange(r.countChange),
    ]);
  const cells = cellsOf(true);
  // Too narrow for the intervals and a readable site: the changes alone (the NDJSON has the intervals).
  const sites = rows.map((r) => r.site);
  const vias = rows.map((r) => r.via);
  if (fixedWidth(['#', 'change (95%)', 'share', 'count'], cells) + SITE_MIN > width) return rankedTable(['#', 'change', 'share', 'count', 'site'], cellsOf(false), sites, width, vias);
  return rankedTable(['#', 'change (95%)', 'share', 'count', 'site'], cells, sites, width, vias);
}

const SITE_MIN = 12;

/** Columns taken by the four number columns and every border. */
function fixedWidth(head: string[], cells: string[][]): number {
  return [0, 1, 2, 3].reduce((sum, c) => sum + Math.max(head[c]!.length, ...cells.map((row) => row[c]!.length)) + 2, 0) + 6;
}

/** Four right-aligned columns sized to their contents, then the site column taking the rest of the width. */
function rankedTable(head: string[], cells: string[][], sites: string[], width: number, vias: (string | undefined)[] = []): string {
  const widths = [0, 1, 2, 3].map((c) => Math.max(head[c]!.length, ...cells.map((row) => row[c]!.length)) + 2);
  // Borders: one per column plus one; each cell has one space of padding either side (in widths).
  const siteWidth = Math.max(SITE_MIN, width - fixedWidth(head, cells));
  const table = new (cliTable())({
    head,
    colWidths: [...widths, siteWidth],
    colAligns: ['right', 'right', 'right', 'right', 'left'],
    style: { head: [], border: [], 'padding-left': 1, 'padding-right': 1 },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    wordWrap: false,
  });
  sites.forEach((site, i) => {
    const via = vias[i];
    table.push([...cells[i]!, clip(site, siteWidth - 2) + (via ? `\n${clip(`  via ${via}`, siteWidth - 2)}` : '')]);
  });
  return `${table.toString()}\n`;
}
