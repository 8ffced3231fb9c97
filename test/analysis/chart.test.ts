// The terminal chart's layout: more points than columns keep each column's maximum, fewer than
// half the columns are widened to fill the width, and the caption spans what is drawn.

import t from 'tap';
import { downsampleMax, renderChart } from '../../lib/model/chart.js';

const options = { height: 4, yFormat: (v: number) => `${v}`, xFormat: (v: number) => `${v} s`, colors: false };
const columns = (text: string): number => Math.max(...text.split('\n').map((l) => [...l].length));

t.test('more points than columns: each column is the maximum of its points', async (t) => {
  t.same(downsampleMax([1, 5, 2, 2, 9, 0], 3), [5, 2, 9]);
  t.same(downsampleMax([1, 2], 5), [1, 2]);
});

t.test('a short series is widened to fill the columns, its values kept', async (t) => {
  const values = [0, 4, 4, 2, 0];
  const x = [1, 2, 3, 4, 5];
  const narrow = renderChart([{ name: 'a', values }], { ...options, width: 9, x });
  const wide = renderChart([{ name: 'a', values }], { ...options, width: 40, x });
  t.ok(columns(wide) - columns(narrow) >= 30, `40 columns of data drawn 8 per point (${columns(narrow)} -> ${columns(wide)} columns)`);
  t.ok(columns(wide) <= 40 + 4, 'never wider than asked (plus the labels)');
  t.match(wide, /^ +1 s +5 s$/m, 'the caption still runs from the first point to the last');
  t.equal(narrow, renderChart([{ name: 'a', values }], { ...options, width: 5, x }), 'up to twice the points, one column each');
  t.match(wide, /^4 ┼ {7}╭─{15}╮/m, 'the peak held for its two points, 16 columns');
});
