// --domain and --thread (issue 13, native recording): which traces a command keeps. Kept apart
// from common.ts so that the shared option definitions there can change independently.

import { UsageError } from '../cli.js';
import { domainIncludes, traceDomain, type Domain, type ThreadInfo, type Trace } from '../format/types.js';
import { threadLabel } from '../model/sites.js';

export const DOMAIN_CHOICES = ['all', 'python', 'native', 'mmap'] as const;
export type DomainChoice = (typeof DOMAIN_CHOICES)[number];

export const DOMAIN_DESCRIBE = "Only allocations of this domain: python (CPython's allocator), native (C code: malloc family and anonymous mmap), mmap (anonymous mmap only), or all";
export const THREAD_DESCRIBE = 'Only allocations made by this thread: its recorded id, OS thread id, or name (profiles recorded with --native)';

/** A trace filter for --domain and --thread, or null when both keep everything. */
export function traceFilter(domain: unknown, thread: unknown): ((t: Trace) => boolean) | null {
  const d = String(domain ?? 'all') as DomainChoice;
  if (!DOMAIN_CHOICES.includes(d)) throw new UsageError(`--domain: expected one of ${DOMAIN_CHOICES.join(', ')}, got '${d}'`);
  const keepDomain = d === 'all' ? null : (t: Trace): boolean => domainIncludes(d as Domain, traceDomain(t));
  const isThread = thread === undefined ? null : threadMatcher(thread);
  const keepThread = isThread && ((t: Trace): boolean => t.thread !== undefined && isThread(t.thread));
  if (!keepDomain && !keepThread) return null;
  return (t) => (keepDomain ? keepDomain(t) : true) && (keepThread ? keepThread(t) : true);
}

/** Does a thread answer to --thread's value: its recorded id, OS thread id, or name. */
function threadMatcher(thread: unknown): (t: ThreadInfo) => boolean {
  const text = String(thread).trim();
  if (text === '') throw new UsageError('--thread: expected a thread id or name');
  const n = /^\d+$/.test(text) ? Number(text) : null;
  return (t) => (n !== null ? t.id === n || t.tid === n : t.name === text);
}

/** Threads listed in a message at most. */
const LISTED_THREADS = 8;

/**
 * A --thread that names no thread of the profile is a usage error, not an empty heap: it says
 * which threads the profile has (among the traces read, up to `upTo` when the read stopped
 * early), or that it has none (recorded without --native, which records the allocating thread).
 */
export function checkThread(thread: unknown, traces: Iterable<Trace>, input: string, upTo: string | null = null): void {
  if (thread === undefined) return;
  const matches = threadMatcher(thread);
  const threads = new Map<number, ThreadInfo>();
  for (const t of traces) {
    if (!t.thread) continue;
    if (matches(t.thread)) return;
    threads.set(t.thread.id, t.thread);
  }
  const value = `--thread ${String(thread).trim()}`;
  const where = upTo ? `${input} up to ${upTo}` : input;
  if (threads.size === 0) throw new UsageError(`${value}: ${where} has no thread contexts (hp-record --native records which thread allocated)`);
  const list = [...threads.values()].sort((a, b) => a.id - b.id);
  const shown = list.slice(0, LISTED_THREADS).map((t) => threadLabel(t));
  const more = list.length > LISTED_THREADS ? `, and ${list.length - LISTED_THREADS} more` : '';
  throw new UsageError(`${value}: no such thread in ${where}; it has ${shown.join(', ')}${more}`);
}
