// Static function names for native frames (lib/format/elf.ts): a native caller recorded as a
// hex offset into its object (dladdr sees exported symbols only) is read back as the function
// that contains it, from the object's .symtab, checked against binutils' `nm`; and only when the
// object is there, is ELF and is not newer than the recording.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readSymbolTable } from '../../lib/format/elf.js';
import { encodeProfile } from '../../lib/format/hpx-writer.js';
import type { Trace } from '../../lib/format/types.js';
import { tmpDir } from '../helpers/profiles.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const HOOK = join(ROOT, 'build', 'Release', 'heapprof_hook.so');
const BIN = join(ROOT, 'bin');

/** Local function symbols with a size, as `nm` lists them: [offset, size, name]. */
function nmLocalFunctions(file: string): Array<[number, number, string]> | null {
  const r = spawnSync('nm', ['-S', '--defined-only', file], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const out: Array<[number, number, string]> = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) t (\S+)$/.exec(line);
    if (m && Number.parseInt(m[2]!, 16) > 1) out.push([Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16), m[3]!]);
  }
  return out;
}

const skip = !existsSync(HOOK) ? 'the native hook is not built' : !nmLocalFunctions(HOOK)?.length ? 'nm is not installed, or the hook has no local symbols' : false;

t.test('offsets inside static functions resolve to the names nm gives', { skip }, async (t) => {
  const table = readSymbolTable(HOOK);
  t.ok(table, 'the hook has a .symtab');
  const syms = nmLocalFunctions(HOOK)!;
  // Aliases at one address may carry another name: compare with the set nm gives there.
  const byStart = new Map<number, Set<string>>();
  for (const [start, , name] of syms) byStart.set(start, (byStart.get(start) ?? new Set()).add(name));
  let checked = 0;
  for (const [start, size] of syms) {
    // A return address in the middle of the function, at its last byte + 1 (a call as the last
    // instruction returns one past the end), and never its first byte (that is the previous one's end).
    for (const ret of [start + Math.ceil(size / 2), start + size]) {
      const name = table!.lookup(ret);
      t.ok(name !== null && byStart.get(start)!.has(name), `0x${ret.toString(16)}: ${name} is in ${[...byStart.get(start)!].join('/')}`);
      checked++;
    }
  }
  t.ok(checked >= 20, `${checked} return addresses checked`);
  t.equal(table!.lookup(0), null, 'an address before every function has no name');
});

async function profileWith(dir: string, file: string, offset: string, startTimeUs: number): Promise<string> {
  const base = join(dir, `p${Math.random().toString(36).slice(2)}`);
  const traces: Trace[] = [{ id: 1, frames: [{ function: offset, file, line: 0, native: true }, { function: 'load', file: 'app.py', line: 4 }], dropped: 0, domain: 'native', thread: { id: 1, tid: 7, name: 'python' } }];
  const { hpm, hpd } = await encodeProfile({
    header: { startTimeUs, sampling: { kind: 'table', bounds: [], probs: [] }, native: true },
    traces,
    events: [{ op: 'alloc', timeUs: 10, trace: 1, size: 1000 }],
  });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  return base;
}

function caller(base: string): string {
  const r = spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), base], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(r.stderr || `hp-snapshot: ${r.signal}`);
  const site = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; native_caller?: string }).find((l) => l.type === 'site');
  return site?.native_caller ?? '';
}

t.test('readers name the frame when the object is unchanged, and keep the offset otherwise', { skip }, async (t) => {
  const dir = tmpDir();
  const [start, size, name] = nmLocalFunctions(HOOK)!.find(([, s, n]) => s > 16 && !n.includes('.'))!;
  const offset = `0x${(start + Math.floor(size / 2)).toString(16)}`;
  const now = Date.now() * 1000;
  const hookMtimeUs = Math.floor(statSync(HOOK).mtimeMs) * 1000;

  t.equal(caller(await profileWith(dir, HOOK, offset, now)), `${name} (heapprof_hook.so)`, 'recorded after the object was built: named');
  t.equal(caller(await profileWith(dir, HOOK, offset, hookMtimeUs - 60e6)), `${offset} (heapprof_hook.so)`, 'recorded before the object was rebuilt: the offset stays');
  t.equal(caller(await profileWith(dir, join(dir, 'gone.so'), offset, now)), `${offset} (gone.so)`, 'the object is gone: the offset stays');

  // Hostile or odd objects: no name, no error, no hang.
  const junk = join(dir, 'junk.so');
  writeFileSync(junk, Buffer.alloc(4096, 0x41));
  t.equal(caller(await profileWith(dir, junk, offset, now)), `${offset} (junk.so)`, 'not ELF');
  const cut = join(dir, 'cut.so');
  writeFileSync(cut, readFileSync(HOOK).subarray(0, 2000));
  t.equal(caller(await profileWith(dir, cut, offset, now)), `${offset} (cut.so)`, 'a truncated object');
  const sub = join(dir, 'a-directory.so');
  mkdirSync(sub);
  t.equal(caller(await profileWith(dir, sub, offset, now)), `${offset} (a-directory.so)`, 'a directory');
  const fifo = join(dir, 'fifo.so');
  if (spawnSync('mkfifo', [fifo]).status === 0) {
    t.equal(caller(await profileWith(dir, fifo, offset, now)), `${offset} (fifo.so)`, 'a FIFO: not opened for reading, no hang');
  }
  // A stripped copy (no .symtab) keeps the offset.
  const stripped = join(dir, 'stripped.so');
  copyFileSync(HOOK, stripped);
  if (spawnSync('strip', [stripped]).status === 0) {
    t.equal(caller(await profileWith(dir, stripped, offset, now)), `${offset} (stripped.so)`, 'a stripped object');
  }
  t.equal(caller(await profileWith(dir, HOOK, 'malloc', now)), 'malloc (heapprof_hook.so)', 'a name dladdr found is kept as it is');
});
