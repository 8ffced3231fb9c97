// The in-memory model of a profile shared by every decoder (hpx v2, heapprof 1.0.x,
// events NDJSON) and every analysis: header, frames, traces, events.

/** How a profile was sampled; every weight is derived from this plus the event size. */
export type Sampling =
  /** Size-range table: sizes below bounds[i] (and not below bounds[i-1]) use probs[i]; sizes >= last bound p=1. */
  | { kind: 'table'; bounds: number[]; probs: number[] }
  /** Byte-Poisson: an allocation of s bytes is sampled with probability 1-exp(-s/R). */
  | { kind: 'poisson'; meanBytes: number };

export interface Header {
  /** 2 for hpx v2, 1 for heapprof 1.0.x. */
  formatVersion: number;
  /** Wall clock at start, microseconds since the Unix epoch. */
  startTimeUs: number;
  pid: number | null;
  ppid: number | null;
  pythonVersion: string | null;
  argv: string[];
  sampling: Sampling;
  mode: 'profile' | 'stats';
  recorder: string | null;
  hostname: string | null;
  /** False when the recorder could not capture stacks (every event is under trace 0). */
  stackCapture: boolean;
  notes: string[];
  /**
   * Set when hp-record --pid started this recording inside a running process (header tag 22):
   * the process had run processAgeUs by then, and what it allocated before is unknown.
   */
  attached?: { processAgeUs: number };
  /** Hex of the 16-byte profile id shared by .hpm and .hpd (null for v1). */
  profileId: string | null;
  /** Native recording (hp-record --native; header tag 13): C allocations were recorded. Absent: not recorded. */
  native?: boolean;
  /** hp-record --native-stacks (header tag 13 bit 4): native traces carry every native frame up to the Python ones. */
  nativeStacks?: boolean;
}

/** Where an allocation came from: CPython's allocator (PEP 445), the C allocator (malloc family), or anonymous mmap. */
export type Domain = 'python' | 'native' | 'mmap';
export const DOMAINS: readonly Domain[] = ['python', 'native', 'mmap'];

/** A thread of the recorded process (THREAD record): the recorder's small id, the OS thread id, its name. */
export interface ThreadInfo {
  id: number;
  tid: number;
  name: string;
}

export interface Frame {
  /** Function (qualified) name; null where the format has none (heapprof 1.0.x). */
  function: string | null;
  file: string;
  /** 0 when unknown. */
  line: number;
  /** A native (C) frame: function is a symbol (or hex offset), file the shared object. */
  native?: boolean;
}

export interface Trace {
  id: number;
  /** Innermost (leaf) frame first. */
  frames: Frame[];
  /** Outer frames beyond the recorder's depth cap that are not listed. */
  dropped: number;
  /** The allocations' domain; absent means python (profiles without native recording). */
  domain?: Domain;
  /** The thread that allocated, where recorded (--native). */
  thread?: ThreadInfo;
}

/** A trace's domain, python when the profile does not say. */
export function traceDomain(t: Trace): Domain {
  return t.domain ?? 'python';
}

/**
 * Whether allocations of domain `of` count in the domain named `name`, the one meaning of a
 * domain name in every command (hp-snapshot --domain, hp-history's python_bytes...):
 * python is CPython's allocator, native all C code (the malloc family and anonymous mmap),
 * mmap anonymous mmap only (a part of native).
 */
export function domainIncludes(name: Domain, of: Domain): boolean {
  return name === 'native' ? of !== 'python' : of === name;
}

/** A v2 header with nothing known yet: decoders fill in what their input says. */
export function blankHeader(): Header {
  return {
    formatVersion: 2,
    startTimeUs: 0,
    pid: null,
    ppid: null,
    pythonVersion: null,
    argv: [],
    sampling: { kind: 'table', bounds: [], probs: [] },
    mode: 'profile',
    recorder: null,
    hostname: null,
    stackCapture: true,
    notes: [],
    profileId: null,
  };
}

/** Trace 0: an allocation with no Python stack (no GIL, or capture disabled). */
export const NO_STACK_TRACE: Trace = Object.freeze({ id: 0, frames: [], dropped: 0 }) as Trace;

export type EventOp = 'alloc' | 'free' | 'rss' | 'end' | 'lost';

export interface ProfileEvent {
  op: EventOp;
  /** Seconds since the start of recording (microsecond resolution). */
  time: number;
  /** Trace id for alloc/free, 0 otherwise. */
  trace: number;
  /** Bytes of the allocation for alloc/free; RSS bytes for rss; lost event count for lost; 0 for end. */
  size: number;
}

/** A named instant in the timeline (heapprof.mark() in Python, hp-record --mark-signal). */
export interface Mark {
  /** 1, 2, ... in the order the recorder wrote them. */
  id: number;
  /** Microseconds since the start of recording. */
  timeUs: number;
  label: string;
}

/** One power-of-two size bucket of the recorder's histogram (entry 0: sizes 0..1; i>0: [2^i, 2^(i+1))). */
export interface HistogramBucket {
  count: number;
  bytes: number;
  sampled: number;
}

/** A warning a reader reports (once) and keeps going after; an error stops it. */
export interface ReadIssue {
  file: string;
  message: string;
  /** Byte offset in the file, or line number for NDJSON, when meaningful. */
  offset?: number;
}

/** Most frames one trace may have, in any input (man/hpx.5, LIMITS; the recorder keeps 128). */
export const MAX_TRACE_FRAMES = 65536;
/** Longest function or file name, in bytes (UTF-8) for .hpm and characters for NDJSON. */
export const MAX_NAME_LENGTH = 65536;
