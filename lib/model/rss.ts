// The process RSS at a moment, from the recorder's samples (about one a second per process): the
// one rule every reader uses. hp-history applies it as it streams (lib/model/history.ts, which
// waits up to rssLookAheadUs for a later sample); hp-report, which draws a few hundred points,
// keeps every sample and asks RssTimeline afterwards. Both give the same figure at the same time.
//
// Per process, the sample nearest to t: the last one at or before t, or the first one after t
// if it is strictly nearer and at most rssLookAheadUs after t. Summed over the processes started
// by t and alive during the interval (t - g, t] that ends there (a process that ended before it
// began holds no memory; one that ended inside it still counts, so a last point is not 0); its
// time the latest of the chosen samples. null when no such process has a sample; 0, at the
// last end, between processes (every process started by t ended before the interval began),
// as the RSS a merged hp-events stream states there.

/** How long after a moment a later RSS sample may still stand for it. */
export function rssLookAheadUs(granularityUs: number): number {
  return Math.max(granularityUs, 2e6);
}

export interface RssAt {
  bytes: number;
  us: number;
}

/** Every RSS sample of one or more processes, answered by the nearest-sample rule above. */
export class RssTimeline {
  private readonly times: number[][];
  private readonly bytes: number[][];
  private readonly endUs: number[];

  /** `startUs`: each process's start on the stream's timeline ([0] for one process). */
  constructor(private readonly startUs: readonly number[]) {
    this.times = startUs.map(() => []);
    this.bytes = startUs.map(() => []);
    this.endUs = startUs.map(() => Infinity);
  }

  /** Process p's sample at t (times never step back within a process). */
  sample(p: number, t: number, bytes: number): void {
    const times = this.times[p];
    if (!times) throw new Error(`RSS event of unknown process ${p + 1}`);
    const last = times.length > 0 ? times[times.length - 1]! : -Infinity;
    times.push(Math.max(t, last));
    this.bytes[p]!.push(bytes);
  }

  /** Process p ended at t (its first END counts). */
  end(p: number, t: number): void {
    if (p >= 0 && p < this.endUs.length && this.endUs[p] === Infinity) this.endUs[p] = t;
  }

  /** The RSS at tUs, for a point whose interval is granularityUs long. */
  at(tUs: number, granularityUs: number): RssAt | null {
    const ahead = rssLookAheadUs(granularityUs);
    let bytes: number | null = null;
    let us = -Infinity;
    let alive = 0;
    let lastEnd = -Infinity;
    for (let p = 0; p < this.startUs.length; p++) {
      if (this.startUs[p]! > tUs) continue;
      if (this.endUs[p]! < tUs - granularityUs) {
        lastEnd = Math.max(lastEnd, this.endUs[p]!);
        continue;
      }
      alive++;
      const times = this.times[p]!;
      // The first sample after tUs.
      let lo = 0;
      let hi = times.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (times[mid]! <= tUs) lo = mid + 1;
        else hi = mid;
      }
      let k = lo - 1;
      if (lo < times.length && times[lo]! <= tUs + ahead && (k < 0 || times[lo]! - tUs < tUs - times[k]!)) k = lo;
      if (k < 0) continue;
      bytes = (bytes ?? 0) + this.bytes[p]![k]!;
      us = Math.max(us, times[k]!);
    }
    if (alive === 0 && lastEnd > -Infinity) return { bytes: 0, us: lastEnd };
    return bytes === null ? null : { bytes, us };
  }
}
