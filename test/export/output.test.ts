// writeResult (-o FILE of hp-pprof, hp-flow, hp-report): a regular file is replaced whole by a
// rename, but a FIFO or a device (-o /dev/null) is written to, never replaced by a plain file.
// (The device case is not run here: a broken writeResult run as root would replace /dev/null.)

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeResult } from '../../lib/export/output.js';

t.test('a regular file is replaced with the new content', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-output-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'out.txt');
  writeFileSync(path, 'old content, longer than the new one');
  await writeResult(path, 'new', false);
  t.equal(readFileSync(path, 'utf8'), 'new');
});

t.test('a FIFO stays a FIFO and its reader gets the data', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-output-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const received = new Promise<string>((resolve, reject) => {
    let text = '';
    createReadStream(fifo, 'utf8')
      .on('data', (c) => (text += c))
      .on('end', () => resolve(text))
      .on('error', reject);
  });
  await writeResult(fifo, 'through the pipe', false);
  t.equal(await received, 'through the pipe');
  t.ok(statSync(fifo).isFIFO(), 'still a FIFO, not replaced by a file');
});
