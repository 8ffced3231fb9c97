// A program killed while Python is still starting (a Ctrl-C or a SIGTERM that hp-record
// passes on before the bootstrap has started the recorder): hp-record dies of the same
// signal and says what happened, not that the site module may be disabled.

import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const py = skip ? null : pythons()[pythons().length - 1]!;

for (const quiet of [false, true]) {
  t.test(`SIGTERM before the recorder started${quiet ? ', with -q' : ''}`, { skip: py === null }, async (t) => {
    const dir = scratch({ 'main.py': 'print("main")\n' });
    let sent = false;
    const r = await hpRecord([...(quiet ? ['-q'] : []), '--python', py!.exe, '-o', join(dir, 'run'), '--', join(dir, 'main.py')], {
      env: { PYTHONPATH: join(FIXTURES, 'slowsite'), PYTHONDONTWRITEBYTECODE: '1' },
      timeoutMs: 60000,
      onStdout: (text, child) => {
        if (!sent && text.includes('starting')) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    t.equal(r.signal, 'SIGTERM', 'hp-record dies of SIGTERM, as the program did');
    t.notMatch(r.stderr, /site module/, 'no guess about a disabled site module');
    t.equal(
      r.stderr,
      quiet ? '' : 'hp-record: the program was killed by SIGTERM before the recorder started; nothing was recorded\n',
      quiet ? 'nothing said with -q' : 'one line says what happened',
    );
  });
}
