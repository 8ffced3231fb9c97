// Arguments and environment values that are not UTF-8 (a Latin-1 file name, a value from another
// locale) reach the program byte for byte, as under plain python: Node decodes its command line and
// environment as UTF-8 (each invalid sequence becomes U+FFFD) and would hand python those
// replacement characters, so hp-record sends the originals from /proc to the bootstrap.

import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BIN, REPO, missingBuild, oldestAndNewest, run, scratch } from '../fixtures/record/harness.js';
import { rawBytes } from '../../lib/cmd/record.js';
import { fromNonUtf8Argument, nonUtf8NameHint } from '../../lib/raw-args.js';

t.test('rawBytes: the program arguments and environment entries Node could not keep', async (t) => {
  const proc = scratch();
  const nul = (parts: Buffer[]): Buffer => Buffer.concat(parts.flatMap((p) => [p, Buffer.from([0])]));
  const latin = (s: string): Buffer => Buffer.from(s, 'latin1');
  writeFileSync(join(proc, 'cmdline'), nul([latin('node'), latin('--flag'), latin('/x/hp-record.js'), latin('-o'), latin('p'), latin('s\xe9.py'), latin('ok'), latin('caf\xe9'), latin('\xff\xfe'), Buffer.from('é')]));
  writeFileSync(join(proc, 'environ'), nul([latin('A=1'), latin('B=caf\xe9'), latin('C\xff=v'), latin('D=\xff'), Buffer.from('E=é')]));
  const target = ['s\ufffd.py', 'ok', 'caf\ufffd', '\ufffd\ufffd', 'é'];
  const env = { A: '1', B: 'caf\ufffd', E: 'é' };
  t.same(rawBytes(target, env, proc), {
    args: [
      [3, 'fffe', '\ufffd\ufffd'],
      [2, '636166e9', 'caf\ufffd'],
    ],
    env: [
      ['42', '636166e9', 'B', 'caf\ufffd'],
      ['43ff', '76', 'C\ufffd', null],
    ],
  }, 'the script itself is not an argument; D was removed (by hp-record), so it is not put back; C was dropped by Node');
  t.same(rawBytes(['-c', 'pass', 'ok', 'caf\ufffd', '\ufffd\ufffd', 'é'], {}, proc)?.args, [[4, 'fffe', '\ufffd\ufffd'], [3, '636166e9', 'caf\ufffd']], 'after -c CODE');
  t.equal(rawBytes(['x.py'], {}, join(proc, 'missing')), null, 'no /proc: nothing');
  writeFileSync(join(proc, 'cmdline'), nul([latin('node'), latin('x.py'), latin('\xff')]));
  writeFileSync(join(proc, 'environ'), nul([latin('A=1')]));
  t.equal(rawBytes(['x.py', 'other'], {}, proc), null, 'a command line that does not end with the target is left alone');
});

t.test('-o NAME that is not UTF-8: refused in one line, not written under another name', async (t) => {
  // Node made U+FFFD of the byte, and hp-record wrote lat\ufffdn.hpm for -o lat\xe9n.
  const proc = scratch();
  const nul = (parts: Buffer[]): Buffer => Buffer.concat(parts.flatMap((p) => [p, Buffer.from([0])]));
  writeFileSync(join(proc, 'cmdline'), nul([Buffer.from('node'), Buffer.from('hp-record.js'), Buffer.from('-o'), Buffer.from('lat\xe9n', 'latin1'), Buffer.from('--output=d\xe9/x', 'latin1')]));
  t.equal(fromNonUtf8Argument('lat\ufffdn', proc), true);
  t.equal(fromNonUtf8Argument('d\ufffd/x', proc), true, '--output=NAME');
  t.equal(fromNonUtf8Argument('plain', proc), false);
  t.equal(fromNonUtf8Argument('x\ufffd', join(proc, 'missing')), false, 'no /proc: not refused');
  writeFileSync(join(proc, 'cmdline'), nul([Buffer.from('node'), Buffer.from('-o'), Buffer.from('typed\ufffd')]));
  t.equal(fromNonUtf8Argument('typed\ufffd', proc), false, 'a name that really has U+FFFD in it is UTF-8');
  const dir = scratch();
  const r = await run('/bin/sh', ['-c', 'exec "$@" -o "$(printf "lat\\351n")" -c pass', 'sh', process.execPath, BIN, '-q'], { cwd: dir });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /^hp-record: -o lat\ufffdn: the name is not valid UTF-8, .*use a UTF-8 name\n$/);
  t.same(readdirSync(dir), [], 'nothing written');
});

t.test('a reader given a profile name that is not UTF-8: one line that says why it cannot be opened', async (t) => {
  // Node makes U+FFFD of the byte and looks for caf\ufffd.hpm: "no such file" alone left the user
  // looking at a file that is there.
  const proc = scratch();
  const nul = (parts: Buffer[]): Buffer => Buffer.concat(parts.flatMap((p) => [p, Buffer.from([0])]));
  writeFileSync(join(proc, 'cmdline'), nul([Buffer.from('node'), Buffer.from('hp-stats.js'), Buffer.from('caf\xe9', 'latin1'), Buffer.from('--from=x\xff', 'latin1')]));
  t.match(nonUtf8NameHint('caf\ufffd.hpm: no such file', proc), /^the name is not UTF-8, .*\(ln -s\)$/);
  t.ok(nonUtf8NameHint('--from x\ufffd: not a time', proc), 'an --option=VALUE');
  t.equal(nonUtf8NameHint('other\ufffd.hpm: no such file', proc), null, 'a name no argument gave');
  t.equal(nonUtf8NameHint('run.hpm: no such file', proc), null);
  t.equal(nonUtf8NameHint('caf\ufffd.hpm: no such file', join(proc, 'missing')), null, 'no /proc: no hint');

  const dir = scratch();
  const name = Buffer.from('caf\xe9', 'latin1').toString('latin1');
  for (const ext of ['.hpm', '.hpd']) copyFileSync(join(REPO, 'test/fixtures/analysis/app' + ext), Buffer.from(join(dir, name + ext), 'latin1'));
  for (const cmd of ['hp-stats', 'hp-snapshot']) {
    const r = await run('/bin/sh', ['-c', 'exec "$@" "$(printf "caf\\351")"', 'sh', process.execPath, join(REPO, 'bin', `${cmd}.js`)], { cwd: dir });
    t.equal(r.code, 1, r.stderr);
    t.match(r.stderr, new RegExp(`^${cmd}: caf\ufffd\\.hpm: no such file \\(a profile is BASE\\.hpm \\+ BASE\\.hpd\\); the name is not UTF-8, .*\\(ln -s\\)\\n$`));
  }
});

const skip = missingBuild();

t.test('bytes that are not UTF-8 reach the program as under python', { skip: skip ?? false }, async (t) => {
  const dir = scratch({
    'show.py': [
      'import os, sys',
      'print([os.fsencode(a).hex() for a in sys.argv[1:]])',
      'print([os.fsencode(a).hex() for a in getattr(sys, "orig_argv", [""])[1:]])',
      'print(sorted((k.hex(), v.hex()) for k, v in os.environb.items() if k.startswith(b"QA_")))',
      'import subprocess',
      'print(subprocess.run(["sh", "-c", "printf %s \\"$QA_X\\" | od -An -tx1"], capture_output=True, text=True).stdout.split())',
    ].join('\n') + '\n',
  });
  // The shell makes the bytes (Node cannot pass them): arguments, and values in the environment.
  const shell = 'x=$(printf "caf\\351"); y=$(printf "\\377\\376"); QA_X=$x; QA_Y="a${y}b"; export QA_X QA_Y; exec "$@" "$x" ok "$y" "é"';
  for (const py of oldestAndNewest(null)) {
    for (const program of [['show.py'], ['-c', 'exec(open("show.py").read())']]) {
      const plain = await run('/bin/sh', ['-c', shell, 'sh', py.exe, ...program], { cwd: dir });
      t.equal(plain.code, 0, plain.stderr);
      t.match(plain.stdout, /636166e9/, 'plain python sees the Latin-1 byte');
      const recorded = await run('/bin/sh', ['-c', shell, 'sh', BIN, '-q', '-o', 'p', '--force', '--python', py.exe, ...program], { cwd: dir });
      t.equal(recorded.code, 0, recorded.stderr);
      t.equal(recorded.stdout, plain.stdout, `${py.version} ${program[0]}: sys.argv, sys.orig_argv, os.environb and a subprocess's environment as under python`);
    }
  }
});
