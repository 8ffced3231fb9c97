// Libraries that only some commands (or some views of a command) use, loaded on first use
// rather than at start-up: every hp-* command pays for what it imports before it can even
// print --help, so a table or chart library is required only when a table or chart is drawn.

import { load } from './where.cjs';

/** A value computed once, on the first call. */
function once<T>(load: () => T): () => T {
  let value: { v: T } | null = null;
  return () => (value ??= { v: load() }).v;
}

/** cli-table3's Table class (CommonJS: the same object an `import` would give). */
export const cliTable = once(() => load('cli-table3') as typeof import('cli-table3'));

/** The asciichart module. */
export const asciichart = once(() => load('asciichart') as typeof import('asciichart'));
