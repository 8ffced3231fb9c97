// A StackSet as a pprof profile (profile.proto, encoded by pprof-format): one Location per
// distinct Python line, one Function per (function, file), one Sample per stack with the
// estimated (Horvitz-Thompson weighted) count and bytes, gzipped as pprof tools expect.

import { gzipSync } from 'node:zlib';
import { Function as PFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import type { Frame } from '../format/types.js';
import { interval95 } from '../model/estimate.js';
import { NO_STACK_LABEL } from '../model/sites.js';
import type { StackSet } from './stacks.js';

export interface PprofOptions {
  /** Free-text comments stored in the profile (e.g. the command line). */
  comments?: string[];
}

/** The sample types, in pprof's conventional order: objects then space. */
export function sampleTypeNames(kind: StackSet['kind']): [string, string] {
  return kind === 'inuse' ? ['inuse_objects', 'inuse_space'] : ['alloc_objects', 'alloc_space'];
}

/**
 * Build the (unzipped) pprof Profile message. Several sets (one per process of a multi-process
 * run, all of one kind) go into one profile, each sample labelled with its process: `pid` (a
 * number, when the header has one) and `profile` (the input it came from).
 */
export function buildPprof(input: StackSet | StackSet[], opts: PprofOptions = {}): Profile {
  const sets = Array.isArray(input) ? input : [input];
  if (sets.length === 0) throw new Error('buildPprof: no stack sets');
  const set = sets[0]!;
  if (sets.some((x) => x.kind !== set.kind)) throw new Error('buildPprof: live heaps and allocation windows cannot share a profile');
  const strings = new StringTable();
  const str = (s: string): number => strings.dedup(s);
  const [objectsName, spaceName] = sampleTypeNames(set.kind);
  const functions: PFunction[] = [];
  const functionIds = new Map<string, number>();
  const locations: Location[] = [];
  const locationIds = new Map<string, number>();

  const functionId = (name: string, file: string, startLine: number): number => {
    const key = `${name}\0${file}`;
    let id = functionIds.get(key);
    if (id === undefined) {
      id = functions.length + 1;
      // system_name differs from name on purpose: pprof's symbolizer treats a function whose two
      // names are equal as a mangled C++ name and "simplifies" it, cutting every <...> out of
      // Python's <module>, <listcomp>, <lambda>, <genexpr> (a name it thinks demangled is left
      // alone). The system name says what it is: the name qualified by its file.
      functions.push(new PFunction({ id, name: str(name), systemName: str(file ? `${file}:${name}` : `:${name}`), filename: str(file), startLine }));
      functionIds.set(key, id);
    }
    return id;
  };
  const locationId = (f: Frame): number => {
    const name = f.function ?? (f.line > 0 ? `${f.file}:${f.line}` : f.file);
    const key = `${name}\0${f.file}\0${f.line}`;
    let id = locationIds.get(key);
    if (id === undefined) {
      id = locations.length + 1;
      // pprof wants an address per location; a synthetic one keeps tools that key on it happy.
      locations.push(new Location({ id, mappingId: 1, address: id, line: [new Line({ functionId: functionId(name, f.file, 0), line: f.line })] }));
      locationIds.set(key, id);
    }
    return id;
  };
  const pseudo = (label: string): number => locationId({ function: label, file: '', line: 0 });

  const samples: Sample[] = [];
  const labelled = sets.length > 1;
  for (const one of sets) {
    const labels: Label[] = [];
    if (labelled) {
      if (one.header?.pid != null) labels.push(new Label({ key: str('pid'), num: one.header.pid }));
      labels.push(new Label({ key: str('profile'), str: str(one.source ?? one.label) }));
    }
    for (const s of one.stacks) {
      const bytes = Math.round(s.est.bytes);
      const count = Math.round(s.est.count);
      if (bytes <= 0 && count <= 0) continue;
      const ids = s.frames.length === 0 ? [pseudo(NO_STACK_LABEL)] : s.frames.map(locationId);
      if (s.dropped > 0) ids.push(pseudo(`[${s.dropped} frames not recorded]`));
      // Native recording: every sample says its domain (python, native, mmap) and thread.
      const own = s.domain === undefined ? labels : [...labels, new Label({ key: str('domain'), str: str(s.domain) })];
      if (s.thread !== undefined) own.push(new Label({ key: str('thread'), num: s.thread }));
      samples.push(new Sample({ locationId: ids, value: [count, bytes], label: own }));
    }
  }

  const comments = [...(opts.comments ?? [])];
  for (const one of sets) {
    const t = one.total;
    // Read from a whole snapshot's NDJSON, the total's interval is the one its snapshot line
    // states (the profile's), which the site lines' variances would not rebuild.
    const ci = one.totalInterval ?? interval95(t.bytes, t.bytesVar, one.unseen?.bytes, t.exactBytes ?? 0);
    const bytes = `${Math.round(Math.max(0, t.bytes))} bytes${ci ? ` (95% interval ${Math.floor(ci[0])}..${Math.ceil(ci[1])})` : ' (exact)'}`;
    // A snapshot cut by --top: its sites' sum, which is not the heap's total.
    const cut = one.sitesLeftOut ? ` in the ${one.stacks.length} site${one.stacks.length === 1 ? '' : 's'} the snapshot kept (${one.sitesLeftOut} more left out by hp-snapshot --top)` : '';
    const what = `heapprof ${one.kind === 'inuse' ? 'live heap' : 'allocations'}: ${labelled ? `${one.source ?? '?'} ` : ''}${one.label}: ${bytes}${cut}`;
    comments.push(one.header?.argv.length ? `${what}; argv: ${one.header.argv.join(' ')}` : what);
  }
  // The profile's time is the earliest set's moment; its duration spans every window.
  const startOf = (x: StackSet): number => (x.header ? x.header.startTimeUs : 0) + (x.atUs ?? 0);
  const endOf = (x: StackSet): number => (x.header ? x.header.startTimeUs : 0) + (x.toUs ?? x.atUs ?? 0);
  const first = Math.min(...sets.map(startOf));
  const last = Math.max(...sets.map(endOf));
  const h = set.header;
  const mainBinary = h?.argv[0] ?? 'python';
  const timeNs = BigInt(Math.round(first)) * 1000n;
  const durationNs = set.kind === 'alloc' ? BigInt(Math.round(Math.max(0, last - first))) * 1000n : 0n;
  // Byte-Poisson sampling has a period (mean bytes between samples), if every set shares it.
  const periods = new Set(sets.map((x) => (x.header?.sampling.kind === 'poisson' ? Math.round(x.header.sampling.meanBytes) : 0)));
  const poisson = periods.size === 1 ? [...periods][0]! : 0;

  const profile = new Profile({
    sampleType: [new ValueType({ type: str(objectsName), unit: str('count') }), new ValueType({ type: str(spaceName), unit: str('bytes') })],
    sample: samples,
    mapping: [
      new Mapping({ id: 1, memoryStart: 0, memoryLimit: 0, fileOffset: 0, filename: str(mainBinary), hasFunctions: true, hasFilenames: true, hasLineNumbers: true }),
    ],
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: timeNs,
    durationNanos: durationNs,
    periodType: new ValueType({ type: str('space'), unit: str('bytes') }),
    period: poisson,
    comment: comments.map(str),
    defaultSampleType: str(spaceName),
  });
  return profile;
}

/** The gzipped bytes `go tool pprof`, Pyroscope and Parca read. */
export function encodePprof(sets: StackSet | StackSet[], opts: PprofOptions = {}): Buffer {
  return gzipSync(buildPprof(sets, opts).encode());
}
