// --domain and --thread (issue 13, native recording): which traces a command keeps. Kept apart
// from common.ts so that the shared option definitions there can change independently.

import { UsageError } from '../cli.js';
import { domainIncludes, traceDomain, type Domain, type Trace } from '../format/types.js';

export const DOMAIN_CHOICES = ['all', 'python', 'native', 'mmap'] as const;
export type DomainChoice = (typeof DOMAIN_CHOICES)[number];

export const DOMAIN_DESCRIBE = "Only allocations of this domain: python (CPython's allocator), native (C code: malloc family and anonymous mmap), mmap (anonymous mmap only), or all";
export const THREAD_DESCRIBE = 'Only allocations made by this thread: its recorded id, OS thread id, or name (profiles recorded with --native)';

/** A trace filter for --domain and --thread, or null when both keep everything. */
export function traceFilter(domain: unknown, thread: unknown): ((t: Trace) => boolean) | null {
  const d = String(domain ?? 'all') as DomainChoice;
  if (!DOMAIN_CHOICES.includes(d)) throw new UsageError(`--domain: expected one of ${DOMAIN_CHOICES.join(', ')}, got '${d}'`);
  const keepDomain = d === 'all' ? null : (t: Trace): boolean => domainIncludes(d as Domain, traceDomain(t));
  let keepThread: ((t: Trace) => boolean) | null = null;
  if (thread !== undefined) {
    const text = String(thread).trim();
    if (text === '') throw new UsageError('--thread: expected a thread id or name');
    const n = /^\d+$/.test(text) ? Number(text) : null;
    keepThread = (t) => t.thread !== undefined && (n !== null ? t.thread.id === n || t.thread.tid === n : t.thread.name === text);
  }
  if (!keepDomain && !keepThread) return null;
  return (t) => (keepDomain ? keepDomain(t) : true) && (keepThread ? keepThread(t) : true);
}
