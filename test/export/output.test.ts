// writeResult (-o FILE of hp-pprof, hp-flow, hp-report): a regular file is replaced whole by a
// rename, but a FIFO or a device (-o /dev/null) is written to, never replaced by a plain file, and
// so is a symbolic link (-o /dev/stdout with stdout redirected to a file), never replaced itself.
// (The device case is not run here: a broken writeResult run as root would replace /dev/null.)

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { closeSync, createReadStream, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
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

t.test('a symbolic link stays a link and the file it names gets the data', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-output-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = join(dir, 'real.txt');
  const link = join(dir, 'link.txt');
  writeFileSync(target, 'old content, longer than the new one');
  symlinkSync(target, link);
  await writeResult(link, 'new', false);
  t.ok(lstatSync(link).isSymbolicLink(), 'still a link, not replaced by a file');
  t.equal(readFileSync(target, 'utf8'), 'new');
});

// `hp-pprof -o /dev/stdout > out.pb.gz`: /dev/stdout is a link to /proc/self/fd/1, itself a link
// to the regular file the shell opened. A rename put the data at /dev/stdout.tmp-PID, then over
// /dev/stdout itself (as root), and out.pb.gz stayed empty; /proc/self/fd/1 and /dev/fd/1 said
// 'cannot write: no such file'.
t.test('-o /proc/self/fd/N with that descriptor on a regular file: the file gets the data', { skip: existsSync('/proc/self/fd') ? false : 'no /proc' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-output-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.pb.gz');
  const fd = openSync(out, 'w');
  t.teardown(() => closeSync(fd));
  await writeResult(`/proc/self/fd/${fd}`, 'through the descriptor', false);
  t.equal(readFileSync(out, 'utf8'), 'through the descriptor');
  t.ok(lstatSync(`/proc/self/fd/${fd}`).isSymbolicLink(), 'the descriptor still names the file');
});
