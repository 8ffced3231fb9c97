// The real built commands (node bin/hp-*.js, after `npm run build`) on committed fixture
// profiles, compared byte for byte with committed golden outputs. Regenerate them on purpose
// with
//     HP_UPDATE_GOLDEN=1 npx tap test/analysis/golden.test.ts
// and review the diff (the fixtures themselves: test/fixtures/analysis/generate.mjs).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { goldenDir, root, sh, update } from '../fixtures/analysis/run.js';

const GOLDEN: Array<[string, string]> = [
  ['events-window', 'hp-events app --from 4 --to 4.2'],
  ['events-v1', 'hp-events ../format/v1'],
  ['stats', 'hp-stats app --no-json'],
  ['stats-json-suggest', 'hp-stats app --json --suggest --budget 2%'],
  ['stats-suggest', 'hp-stats app --suggest --budget 50/s --no-json'],
  ['stats-poisson', 'hp-stats poisson --json'],
  ['stats-sizes', 'hp-stats sizes --no-json'],
  ['stats-sizes-suggest', 'hp-stats sizes --suggest --budget 100/s --json'],
  ['history-1s', 'hp-history app --granularity 1 --top 3 --sites app.py:30,names.py:8'],
  ['history-auto', 'hp-history app --top 1 --group-by file'],
  ['history-window', 'hp-history app --granularity 0.5 --from 3.5 --to 6.5 --top 2'],
  ['history-chart', 'hp-history app --granularity 0.25 --chart --height 8 --width 80'],
  ['history-poisson', 'hp-history poisson --granularity 2 --top 2'],
  ['snapshot-peak', 'hp-snapshot app --at peak'],
  ['snapshot-5.5-line', 'hp-snapshot app --at 5.5 --group-by line'],
  ['snapshot-end-function', 'hp-snapshot app --at end --group-by function --top 3'],
  ['snapshot-poisson-file', 'hp-snapshot poisson --at 9 --group-by file'],
  ['collapse-peak', 'hp-snapshot app --at peak | hp-collapse'],
  ['collapse-end', 'hp-collapse app'],
  ['collapse-alloc', 'hp-events app | hp-collapse --alloc'],
  ['chart-rss', 'hp-history app --granularity 0.5 --top 0 | hp-chart --field rss --height 6 --width 60'],
  ['v1-snapshot', 'hp-snapshot ../format/v1 --at peak'],
  ['v1-history', 'hp-history ../format/v1 --granularity 1'],
  ['v1-stats', 'hp-stats ../format/v1 --no-json'],
  ['v1-collapse', 'hp-collapse ../format/v1'],
];

t.test('golden outputs', async (t) => {
  if (!existsSync(join(root, 'dist', 'cmd', 'snapshot.js'))) {
    t.fail('dist/ is missing: run npm run build first');
    return;
  }
  if (update) mkdirSync(goldenDir, { recursive: true });
  for (const [name, command] of GOLDEN) {
    const r = sh(command);
    t.equal(r.status, 0, `${name}: exit status (stderr: ${r.stderr.trim()})`);
    const file = join(goldenDir, `${name}.out`);
    if (update) writeFileSync(file, r.stdout);
    const expected = existsSync(file) ? readFileSync(file, 'utf8') : '(missing golden file)';
    t.equal(r.stdout, expected, `${name}: ${command}`);
  }
});

t.test('the folded output of a fixture, exactly', async (t) => {
  const r = sh('hp-snapshot app --at peak -q | hp-collapse');
  // Root first, merged, sorted in byte order; the two buffer sites are recorded at p = 1 and exact
  // (the others are the split peak's half-B estimates: man/hp-estimates.7, "The peak").
  t.equal(
    r.stdout,
    '<module> (app.py:1) 2008316\n' +
      '[no Python stack] 228425\n' +
      'main (app.py:40);load_buffers (app.py:12) 3000990\n' +
      'main (app.py:40);spike (app.py:20);<listcomp> (app.py:20) 5001650\n',
  );
});

