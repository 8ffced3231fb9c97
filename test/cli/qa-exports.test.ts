// Regressions from the exports and comparison commands' QA (hp-chart, hp-diff, hp-flow, hp-pprof,
// hp-collapse, hp-report): each test failed before its fix.

import t from 'tap';
import { sh } from '../fixtures/analysis/run.js';

t.test('hp-chart of a field that is 0 throughout labels every byte row with its own value', async (t) => {
  const rows = (text: string): string[] => text.split('\n').filter((l) => /[┼┤]/.test(l));
  for (const height of [3, 15]) {
    const r = sh(`hp-chart --field live_bytes --height ${height} --width 40`, '{"live_bytes":0}\n{"live_bytes":0}\n');
    t.equal(r.status, 0, r.stderr);
    const labels = rows(r.stdout).map((l) => l.split(/[┼┤]/)[0]!.trim());
    t.equal(labels.length, height);
    t.equal(new Set(labels).size, labels.length, `no label repeated (man hp-chart: every label is exactly the value of its row): ${labels.join(', ')}`);
    t.equal(labels[labels.length - 1], '0 B', 'the bottom row is 0');
  }
});
