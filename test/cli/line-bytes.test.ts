// lib/line-bytes.ts: numbers and seconds composed as bytes are exactly the text String() and
// secondsText() give (hp-events' output must not change), chunks arrive in order, and a slow
// stream holds back the writer.

import t from 'tap';
import { Writable } from 'node:stream';
import { OutputWriter } from '../../lib/cli.js';
import { secondsText } from '../../lib/format/ndjson.js';
import { asciiBytes, LineBytes } from '../../lib/line-bytes.js';
import { prng } from '../helpers/profiles.js';

/** A stream that keeps what it is given, calling back after `delayMs`. */
function sink(delayMs = 0): { stream: Writable; text: () => string; writes: () => number } {
  const parts: Buffer[] = [];
  const stream = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      if (delayMs > 0) setTimeout(cb, delayMs);
      else cb();
    },
  });
  return { stream, text: () => Buffer.concat(parts).toString('utf8'), writes: () => parts.length };
}

t.test('seconds and numbers: the same text as secondsText() and String()', async (t) => {
  const random = prng(7);
  const times = [0, 1, 9, 10, 999999, 1000000, 1000001, 1500000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 1e15 - 1, 1e15, 1e16 + 3, 0.5, -1, -0, 2 ** 53, 2 ** 53 + 2];
  for (let i = 0; i < 2000; i++) times.push(Math.floor(random() * 10 ** Math.floor(random() * 16)));
  const numbers = [...times, 1e21, 1.5e300, NaN, Infinity, -Infinity, 0.1, 123.456, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1];
  const { stream, text } = sink();
  const lines = new LineBytes(new OutputWriter(stream), 256);
  let expected = '';
  for (const us of times) {
    lines.seconds(us);
    lines.bytes(asciiBytes(' '));
    expected += `${secondsText(us)} `;
    if (lines.full) await lines.flush();
  }
  for (const n of numbers) {
    lines.number(n);
    lines.text('\n');
    expected += `${String(n)}\n`;
    if (lines.full) await lines.flush();
  }
  await lines.flush();
  t.equal(text(), expected);
});

t.test('text longer than a chunk, and UTF-8', async (t) => {
  const { stream, text } = sink();
  const lines = new LineBytes(new OutputWriter(stream), 64);
  const long = 'é🐍'.repeat(5000) + '\ud800';
  lines.text('a');
  lines.text(long);
  lines.number(42);
  await lines.flush();
  t.equal(text(), Buffer.from(`a${long}42`, 'utf8').toString('utf8'));
});

t.test('a slow stream holds the writer back: at most a chunk or two waits', async (t) => {
  const { stream, text, writes } = sink(2);
  const lines = new LineBytes(new OutputWriter(stream), 4096);
  let expected = '';
  let most = 0;
  for (let i = 0; i < 20000; i++) {
    lines.number(i);
    lines.text('\n');
    expected += `${i}\n`;
    if (lines.full) {
      await lines.flush();
      most = Math.max(most, stream.writableLength);
    }
  }
  await lines.flush();
  await new Promise<void>((resolve) => stream.end(resolve));
  t.ok(most <= 2 * (4096 + 4096), `buffered in the stream at most ${most} bytes`);
  t.ok(writes() > 10);
  t.equal(text(), expected);
});
