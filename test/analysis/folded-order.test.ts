// FoldedStacks.sortedLines sorts the stacks, not the lines, to hold one copy of the text: its
// output must be exactly the lines sorted as strings, also where one stack is a prefix of
// another followed by a space ("pid 12" and "pid 12 x;y" under --by pid, labels with spaces).

import t from 'tap';
import { FoldedStacks } from '../../lib/model/folded.js';

t.test('sortedLines equals the sorted lines', async (t) => {
  let x = 12345;
  const rnd = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % n;
  };
  const alphabet = ['a', 'b', ' ', ';', '(', ')', '1', '9', ':', 'pid 1', 'f (x.py:1)'];
  for (let round = 0; round < 50; round++) {
    const folded = new FoldedStacks();
    const stacks: string[] = [];
    const totals = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      // Often extend an earlier stack, so that prefixes are common.
      const base = stacks.length > 0 && rnd(2) === 0 ? stacks[rnd(stacks.length)]! : '';
      let s = base;
      const n = 1 + rnd(4);
      for (let k = 0; k < n; k++) s += alphabet[rnd(alphabet.length)]!;
      stacks.push(s);
      const v = rnd(3) === 0 ? 0.2 : 1 + rnd(20000);
      folded.add(s, v);
      totals.set(s, (totals.get(s) ?? 0) + v);
    }
    const expected = [...totals]
      .filter(([, v]) => Math.round(v) > 0)
      .map(([s, v]) => `${s} ${Math.round(v)}`)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const naive = [...folded.sortedLines()];
    t.same(naive, expected, `round ${round}`);
  }
});

t.test('a stack that is a prefix of another followed by a space', async (t) => {
  const f = new FoldedStacks();
  f.add('pid', 5);
  f.add('pid 1;main', 3);
  // As lines: "pid 1;main 3" < "pid 5" ('1' < '5'), though the stack "pid" sorts first.
  t.same([...f.sortedLines()], ['pid 1;main 3', 'pid 5']);
  const g = new FoldedStacks();
  g.add('a', 1);
  g.add('a;b', 2);
  t.same([...g.sortedLines()], ['a 1', 'a;b 2']);
});
