// The shared command plumbing: one error policy (messages, exit codes), NDJSON input with
// located errors, and an output writer that stops quietly when its reader goes away.

import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import t from 'tap';
import { BrokenPipe, EXIT_DATA, EXIT_OK, EXIT_USAGE, HpError, OutputWriter, UsageError, formatBytes, readNdjson, reportError, systemErrorMessage } from '../../lib/cli.js';

t.test('system errors become one short located line', async (t) => {
  const e = Object.assign(new Error("ENOENT: no such file or directory, open 'run.hpd'"), { code: 'ENOENT', path: 'run.hpd' });
  t.equal(systemErrorMessage(e), 'run.hpd: no such file');
  const f = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  t.equal(systemErrorMessage(f), 'no space left on device');
});

t.test('exit codes: 1 data/runtime, 2 usage, 0 for a broken pipe', async (t) => {
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (writes.push(s), true)) as typeof process.stderr.write;
  try {
    t.equal(reportError('hp-x', new HpError('run.hpd: block 3 at byte 99: bad checksum')), EXIT_DATA);
    t.equal(reportError('hp-x', new UsageError('unknown option --frob')), EXIT_USAGE);
    t.equal(reportError('hp-x', new BrokenPipe()), EXIT_OK);
    t.equal(reportError('hp-x', Object.assign(new Error('x'), { code: 'EPIPE' })), EXIT_OK);
    t.equal(reportError('hp-x', new TypeError('oops')), EXIT_DATA);
  } finally {
    process.stderr.write = orig;
  }
  t.same(writes.slice(0, 2), ['hp-x: run.hpd: block 3 at byte 99: bad checksum\n', 'hp-x: unknown option --frob\n']);
  t.match(writes[2], /^hp-x: internal error: oops\n$/);
  t.equal(writes[3], 'hp-x: (set HP_DEBUG=1 for a stack trace)\n');
});

t.test('NDJSON: values with line numbers; bad lines named or counted', async (t) => {
  const got: Array<[number, unknown]> = [];
  for await (const l of readNdjson(Readable.from(['{"a":1}\n\n[2]\n', '"x"\n']), 'stdin')) got.push([l.lineNumber, l.value]);
  t.same(got, [[1, { a: 1 }], [3, [2]], [4, 'x']]);
  await t.rejects(async () => {
    for await (const _ of readNdjson(Readable.from(['{"a":1}\n{"b":\n']), 'stdin')) void _;
  }, new HpError('stdin: line 2: not valid JSON'));
  const stats = { invalid: 0 };
  const ok: unknown[] = [];
  for await (const l of readNdjson(Readable.from(['nope\n{"a":1}\n{\n']), 'stdin', stats, true)) ok.push(l.value);
  t.same(ok, [{ a: 1 }]);
  t.equal(stats.invalid, 2);
});

t.test('human byte units', async (t) => {
  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(30 * 1024 * 1024), '30.0 MiB');
  t.equal(formatBytes(-2048), '-2.0 KiB');
  // A value that one decimal would print as 1024 of a unit is written in the next unit.
  t.equal(formatBytes(1023.6), '1.0 KiB');
  t.equal(formatBytes(1023.4), '1023 B');
  t.equal(formatBytes(1048575), '1.0 MiB');
  t.equal(formatBytes(1048524), '1023.9 KiB');
  t.equal(formatBytes(-1048575), '-1.0 MiB');
  t.equal(formatBytes(1073741823), '1.0 GiB');
});

t.test('a writer into a closed pipe ends quietly with status 0', async (t) => {
  // A child process writes a million lines through OutputWriter into `head -1`.
  const script = `
    import { OutputWriter, runMain } from ${JSON.stringify(new URL('../../lib/cli.ts', import.meta.url).href)};
    runMain('hp-test', async () => {
      const out = new OutputWriter();
      for (let i = 0; i < 1e6; i++) await out.line({ i });
      await out.flush();
    });`;
  const child = spawn('bash', ['-c', `"${process.execPath}" ${process.execArgv.map((a) => `'${a}'`).join(' ')} --input-type=module -e "$0" | head -1`, script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  t.equal(out, '{"i":0}\n');
  t.equal(err, '');
  t.equal(code, 0);
});

t.test('OutputWriter propagates EPIPE as BrokenPipe to its producer', async (t) => {
  const { Writable } = await import('node:stream');
  const sink = new Writable({
    highWaterMark: 1,
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const out = new OutputWriter(sink, 1);
  let caught: unknown = null;
  try {
    for (let i = 0; i < 100; i++) await out.line({ i });
  } catch (e) {
    caught = e;
  }
  t.ok(caught instanceof BrokenPipe, 'the producer sees BrokenPipe');
});

t.test('a long site label keeps its function, the end of its path and its domain', async (t) => {
  const { clip } = await import('../../lib/cmd/human.js');
  const py = 'sanitize_array (/venv/lib/python3.11/site-packages/pandas/core/construction.py:671)';
  t.equal(clip(py, 200), py, 'a label that fits is left alone');
  t.equal(clip(py, 50), 'sanitize_array (…/pandas/core/construction.py:671)');
  t.equal(clip(py, 50).length, 50);
  const native = `${py} [native: default_malloc (_multiarray_umath.cpython-311-x86_64-linux-gnu.so)]`;
  t.equal(clip(native, 130), 'sanitize_array (…ges/pandas/core/construction.py:671) [native: default_malloc (_multiarray_umath.cpython-311-x86_64-linux-gnu.so)]');
  t.equal(clip(native, 60), 'sanitize_array (…s/pandas/core/construction.py:671) [native]', 'the symbol goes before the file name would');
  t.equal(clip(native, 60).length, 60);
  t.equal(clip('_from_sequence (/v/pandas/core/arrays/string_arrow.py:241) [mmap]', 50), '_from_sequence (…rrays/string_arrow.py:241) [mmap]');
  t.equal(clip('_call_with_frames_removed (<frozen importlib._bootstrap>:241) [mmap: alloc_mmap (libopenblas.so)]', 60), '_call_with_frames_removed (…mportlib._bootstrap>:241) [mmap]', 'a file name without a directory is cut too');
  // A function name too long for its line keeps its start, beside the file name.
  const long = `${'a_generated_name_'.repeat(8)}x (/srv/app/pkg/handlers.py:88)`;
  t.equal(clip(long, 50), 'a_generated_name_a_generated_n… (…/handlers.py:88)');
  t.equal(clip(long, 50).length, 50);
  t.equal(clip(`${'g'.repeat(80)} (x.py:5) [native: malloc (libc.so.6)]`, 40), `${'g'.repeat(21)}… (x.py:5) [native]`);
  // Too narrow for the function and the file name: the end of the label, as before.
  t.equal(clip(py, 30), '…das/core/construction.py:671)');
  t.equal(clip(py, 30).length, 30);
  t.equal(clip('abc', 1), 'a');
  // Split --by pid: the process is what tells two rows of one site apart, so it stays.
  const split = 'pid 19788: _compile_bytecode (<frozen importlib._bootstrap_external>:780)';
  t.equal(clip(split, 43), 'pid 19788: _compile_byteco… (…xternal>:780)');
  t.equal(clip(split, 43).length, 43);
  t.equal(clip(`pid 4242: ${py}`, 60), 'pid 4242: sanitize_array (…/pandas/core/construction.py:671)');
});

t.test('sites of one label name the caller that tells them apart, on a line below', async (t) => {
  const { tellingCallers } = await import('../../lib/model/sites.js');
  const { sitesTable } = await import('../../lib/cmd/human.js');
  const f = (fn: string, file: string, line: number) => ({ function: fn, file, line });
  const leaf = f('_compile_bytecode', '<frozen importlib._bootstrap_external>', 729);
  const get = f('get_code', '<frozen importlib._bootstrap_external>', 1069);
  const imp = f('_call_with_frames_removed', '<frozen importlib._bootstrap>', 241);
  const site = (key: string, label: string, frames: ReturnType<typeof f>[]) => ({ key, label, trace: 1, frames, dropped: 0, domain: 'python' as const });
  const label = '_compile_bytecode (<frozen importlib._bootstrap_external>:729)';
  const sites = [
    site('a', label, [leaf, get, f('<module>', '/lib/json/__init__.py', 107), f('<module>', 'app.py', 1)]),
    site('b', 'other (app.py:3)', [f('other', 'app.py', 3)]),
    site('c', label, [leaf, get, f('<module>', '/lib/json/__init__.py', 106), f('<module>', 'app.py', 1)]),
    // Parts from c only at json/__init__.py:106's caller (so c is told by its app.py frame),
    // and the frozen frame there is passed over.
    site('d', label, [leaf, get, f('<module>', '/lib/json/__init__.py', 106), imp, f('<module>', '/lib/json/decoder.py', 5), f('<module>', 'app.py', 1)]),
    // The same frames as a as text: nothing to tell them apart by.
    site('e', label, [leaf, get, f('<module>', '/lib/json/__init__.py', 107), f('<module>', 'app.py', 1)]),
  ];
  const callers = tellingCallers(sites);
  t.same(callers, [undefined, undefined, '<module> (app.py:1)', '<module> (/lib/json/decoder.py:5)', undefined]);
  const two = tellingCallers([sites[0]!, sites[2]!]);
  t.same(two, ['<module> (/lib/json/__init__.py:107)', '<module> (/lib/json/__init__.py:106)'], 'the first frame where two stacks part');
  t.same(tellingCallers([sites[1]!]), [undefined], 'a unique label needs no caller');

  const table = sitesTable(
    [
      { rank: 1, bytes: 2048, interval: null, count: 2, site: label, via: '<module> (/lib/json/__init__.py:107)' },
      { rank: 2, bytes: 1024, interval: null, count: 1, site: 'other (app.py:3)' },
    ],
    3072,
    100,
  );
  const lines = table.split('\n');
  const at = lines.findIndex((l) => l.includes('_compile_bytecode'));
  t.match(lines[at + 1], /^│ +│ +│ +│ +│ +│   via <module> \(\/lib\/json\/__init__\.py:107\) +│$/, 'the caller on the next line, under the site');
  t.match(lines[at + 2], /│ +2 │/, 'then the next row');
  t.ok(lines.every((l) => l.length === 0 || [...l].length === [...lines[0]!].length), 'every line as wide as the table');
});

t.test('progress on a terminal: nothing for a short read, then a line with units that fit', async (t) => {
  const { progressReporter } = await import('../../lib/source-arg.js');
  const written: string[] = [];
  const tty = process.stderr.isTTY;
  const write = process.stderr.write;
  process.stderr.isTTY = true;
  process.stderr.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
  let clock = 1_000_000;
  try {
    const quick = progressReporter(() => clock);
    for (let i = 1; i <= 10; i++) {
      clock += 40; // a read of 400 ms in all
      quick.onProgress!(i * 500, 5000);
    }
    quick.done();
    t.same(written, [], 'a read shorter than half a second draws nothing');
    const slow = progressReporter(() => clock);
    clock += 600;
    slow.onProgress!(2_500_000, 10_000_000);
    slow.done();
  } finally {
    process.stderr.isTTY = tty;
    process.stderr.write = write;
  }
  t.equal(written.length, 2, 'a long read draws the line, and clears it');
  t.match(JSON.stringify(written[0]), /reading 25% \(2\.4 MiB of 9\.5 MiB\)/, 'bytes with their unit');
});
