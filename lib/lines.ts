// Bounded NDJSON input (man/hpx.5, LIMITS): a line splitter that scans every byte once (split2
// re-splits the whole pending line on each chunk, quadratic on one long line) and refuses a line
// longer than the limit, and a nesting-depth check run before JSON.parse on long lines (parsing
// is iterative in V8, but String(), JSON.stringify and any recursive walk of the value are not).

import { Transform, type TransformCallback } from 'node:stream';
import { HpError } from './cli.js';

/** Default longest NDJSON line, in bytes; $HEAPPROF_MAX_LINE_BYTES raises (or lowers) it. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
/** Deepest nesting of arrays and objects accepted in one NDJSON value. */
export const MAX_JSON_DEPTH = 256;

export function maxLineBytes(): number {
  const env = process.env.HEAPPROF_MAX_LINE_BYTES;
  const n = env === undefined || env.trim() === '' ? NaN : Number(env);
  return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_MAX_LINE_BYTES;
}

/**
 * Bytes in, one string per line out (without the newline; a final line without one too).
 * A line past `maxBytes` fails the stream with an HpError naming it: `name: line N: ...`.
 */
export function lineSplitter(name: string, maxBytes = maxLineBytes()): Transform {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNumber = 0;
  const tooLong = (): HpError =>
    new HpError(`${name}: line ${lineNumber + 1}: longer than ${maxBytes} bytes (the limit; set HEAPPROF_MAX_LINE_BYTES to raise it)`);
  return new Transform({
    readableObjectMode: true,
    transform(chunk: Buffer | string, _enc: BufferEncoding, done: TransformCallback): void {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      let from = 0;
      for (;;) {
        const nl = buf.indexOf(10, from);
        if (nl < 0) break;
        if (pendingBytes + nl - from > maxBytes) return done(tooLong());
        const line = pending.length === 0 ? buf.toString('utf8', from, nl) : Buffer.concat([...pending, buf.subarray(from, nl)]).toString('utf8');
        pending = [];
        pendingBytes = 0;
        lineNumber++;
        this.push(line);
        from = nl + 1;
      }
      if (from < buf.length) {
        pendingBytes += buf.length - from;
        if (pendingBytes > maxBytes) return done(tooLong());
        // Copy: the caller may reuse its chunk.
        pending.push(Buffer.from(buf.subarray(from)));
      }
      done();
    },
    flush(done: TransformCallback): void {
      if (pendingBytes > 0) this.push(Buffer.concat(pending).toString('utf8'));
      done();
    },
  });
}

/** Whether `text` nests arrays/objects deeper than `max` (strings and escapes understood). */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  // Each level takes at least two characters: shorter text cannot be too deep.
  if (text.length <= 2 * max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}
