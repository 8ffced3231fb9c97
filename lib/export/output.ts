// Where an exporter's result goes: `-o FILE` (written whole, then renamed into place so a
// failed run never leaves half a file; a device, FIFO or symbolic link is written through) or
// stdout, which must not be a terminal for binary data.

import { lstat, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { HpError, OutputWriter, UsageError, systemErrorMessage } from '../cli.js';
import { expandGlob, isGlobArg } from '../profile-inputs.js';

/** A failure to write `-o path`, named by the path the user gave (not our temporary file's). */
async function cannotWrite(path: string, e: unknown): Promise<never> {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code !== 'string') throw e;
  const dir = dirname(path);
  if (err.code === 'ENOENT' && !(await stat(dir).catch(() => null))) throw new HpError(`-o ${path}: no such directory: ${dir}`);
  throw new HpError(`-o ${path}: cannot write: ${systemErrorMessage({ ...err, message: err.message, path: undefined })}`);
}

/**
 * A usage error when `-o path` is empty, or one of the files the command reads (an NDJSON input,
 * or a profile's BASE.hpm, BASE.hpd or seek index BASE.hpi), however either is spelled: the
 * result would replace the data it came from. Checked before reading, so nothing is read in vain.
 */
export async function checkOutputArg(path: string | undefined, inputs: readonly string[]): Promise<void> {
  if (path === '') throw new UsageError("-o '': expected a file name (or - for standard output)");
  if (path === undefined || path === '-') return;
  // A quoted glob ('run.*') names every profile it matches: each of their files is read.
  const names = inputs.flatMap((input) => (isGlobArg(input) ? expandGlob(input) : [input]));
  const out = await stat(path).catch(() => null);
  if (out === null) {
    // No such file yet: the seek index a reader builds on first use would be written there.
    for (const input of names) {
      if (input === '-') continue;
      const base = input.replace(/\.hp[mdi]$/, '');
      if (resolve(`${base}.hpi`) === resolve(path) && (await stat(`${base}.hpm`).catch(() => null)) !== null) {
        throw new UsageError(`-o ${path}: is ${base}.hpi, the seek index of the input ${input}: writing it would replace what is read; name another file`);
      }
    }
    return;
  }
  if (!out.isFile()) return;
  for (const input of names) {
    if (input === '-') continue;
    const base = input.replace(/\.hp[mdi]$/, '');
    for (const file of [input, `${base}.hpm`, `${base}.hpd`, `${base}.hpi`]) {
      const st = await stat(file).catch(() => null);
      if (st !== null && st.isFile() && st.dev === out.dev && st.ino === out.ino) {
        throw new UsageError(`-o ${path}: is ${file === input ? 'the input' : `${file}, of the input ${input}`}: writing it would replace what is read; name another file`);
      }
    }
  }
}

/** Write `data` to `path` (or stdout when path is undefined or '-'). */
export async function writeResult(path: string | undefined, data: Buffer | string, binary: boolean): Promise<void> {
  if (path === undefined || path === '-') {
    if (binary && process.stdout.isTTY) throw new UsageError('refusing to write binary output to a terminal: use -o FILE or a pipe');
    const out = new OutputWriter(process.stdout);
    if (typeof data === 'string') {
      await out.write(data);
      await out.flush();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
    });
    return;
  }
  // Not a regular file (/dev/null, a FIFO, /dev/stdout): written to as it is. Renaming a file over
  // it would replace the device itself (as root, `-o /dev/null` left a plain file at /dev/null).
  // A symbolic link too, whatever it names: /dev/stdout (or /dev/fd/1, /proc/self/fd/1) with stdout
  // on a file is a link to that file, and a rename replaced the link (or found no directory for its
  // temporary file), never reaching the file the shell opened.
  const [existing, link] = await Promise.all([stat(path).catch(() => null), lstat(path).catch(() => null)]);
  if (existing !== null && ((!existing.isFile() && !existing.isDirectory()) || link?.isSymbolicLink())) {
    await writeFile(path, data).catch((e) => cannotWrite(path, e));
    return;
  }
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    await cannotWrite(path, e);
  }
}
