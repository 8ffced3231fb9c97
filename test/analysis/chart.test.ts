// The terminal chart's layout: more points than columns keep each column's maximum, fewer than
// half the columns are widened to fill the width, and the caption spans what is drawn.

import t from 'tap';
import { downsampleMax, renderChart } from '../../lib/model/chart.js';

const options = { height: 5, yFormat: (v: number) => `${v}`, xFormat: (v: number) => `${v} s`, colors: false };
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

t.test('the y axis is labelled in round, even steps, its top not below the data', async (t) => {
  const { niceTop } = await import('../../lib/model/chart.js');
  t.equal(niceTop(150065, 15), 180000, 'rows of 12,000');
  t.equal(niceTop(150000, 15), 150000, 'a max that is already round stays the top');
  t.equal(niceTop(4, 4), 4);
  t.equal(niceTop(0.37, 4), 0.4);
  t.equal(niceTop(0, 15), 1, 'nothing to draw: an axis of 0..1');
  t.equal(niceTop(70 * 2 ** 20, 15, true), 75 * 2 ** 20, 'bytes: 5.0 MiB a row');
  t.equal(niceTop(1.3 * 2 ** 20, 15, true), 1.5 * 2 ** 20, 'bytes: at least 0.1 MiB a row, which one decimal writes');
  t.equal(niceTop(1000, 15, true), 1200, 'bytes under 1 KiB: whole bytes (80 a row)');
  // Through renderChart: every label a multiple of one step, the top one at or above the data.
  const plain = (v: number): string => String(Number(v.toPrecision(4)));
  const chart = renderChart([{ name: 'live_count', values: [0, 30010, 60030, 150065, 120000] }], { ...options, height: 5, width: 20, yFormat: plain, x: null });
  const labels = chart.split('\n').filter((l) => /[┼┤]/.test(l)).map((l) => Number(l.split(/[┼┤]/)[0]!.trim()));
  t.ok(labels[0]! >= 150065, `the top label (${labels[0]}) is not below the largest value`);
  const step = labels[0]! - labels[1]!;
  t.same(labels, labels.map((_, i) => labels[0]! - i * step), `even steps: ${labels.join(', ')}`);
  t.match(String(step), /^(1|12|15|2|25|3|4|5|6|8)0*$/, 'a round step');
});
