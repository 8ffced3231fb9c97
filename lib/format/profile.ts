// Open a profile by base name, whatever wrote it: hpx v2 or heapprof 1.0.x, told apart by
// the first bytes of the .hpm. Accepts `run`, `run.hpm` or `run.hpd`.

import { open, stat } from 'node:fs/promises';
import { HpError } from '../cli.js';
import type { ProfileSource, ReadOptions } from './source.js';

/** `run.hpm` / `run.hpd` / `run` → `run`. */
export function profileBase(arg: string): string {
  return arg.replace(/\.(hpm|hpd)$/, '');
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** An error about `path` that names it: Node's EISDIR (from reading an opened directory) names none. */
function locate(e: unknown, path: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && !err.path) err.path = path;
  return e;
}

const IS_A_DIRECTORY = 'is a directory (a profile is BASE.hpm + BASE.hpd)';

/** The first n bytes of path; a directory (which opens, and then fails its read) is named as such. */
async function firstBytes(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw new HpError(`${path}: ${IS_A_DIRECTORY}`);
    throw e;
  } finally {
    await fh.close();
  }
}

export async function openProfile(arg: string, opts: ReadOptions = {}): Promise<ProfileSource> {
  const base = profileBase(arg);
  const hpm = `${base}.hpm`;
  const hpd = `${base}.hpd`;
  let head: Buffer;
  try {
    head = await firstBytes(hpm, 4);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') {
      // `hp-x notes.txt`: the user named some other file, not a profile base.
      if (arg === base && (await isFile(arg))) {
        throw new HpError(`${arg}: not a heapprof profile or events NDJSON (name a profile by its base: BASE for BASE.hpm + BASE.hpd)`);
      }
      if (arg === base && (await isDirectory(arg))) {
        throw new HpError(`${arg}: is a directory (name a profile by its base: BASE for BASE.hpm + BASE.hpd)`);
      }
      throw new HpError(`${hpm}: no such file (a profile is BASE.hpm + BASE.hpd)`);
    }
    throw locate(e, hpm);
  }
  let hpdIsDirectory: boolean;
  try {
    const fh = await open(hpd, 'r');
    try {
      hpdIsDirectory = (await fh.stat()).isDirectory();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HpError(`${hpd}: no such file (the .hpm has no matching .hpd)`);
    throw locate(e, hpd);
  }
  if (hpdIsDirectory) throw new HpError(`${hpd}: ${IS_A_DIRECTORY}`);
  if (head.length === 0) throw new HpError(`${hpm}: empty file (no header)`);
  // The decoders are loaded here, when a profile is opened, not by every command at start-up.
  const { V1Profile, isV1Header } = await import('./v1.js');
  if (isV1Header(head)) return V1Profile.open(base, hpm, hpd, opts);
  const { V2Profile } = await import('./hpx.js');
  return V2Profile.open(base, hpm, hpd, opts);
}
