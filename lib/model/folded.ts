// Brendan Gregg's folded stacks: one line per distinct stack, root frame first, frames
// joined by ';', one space, an integer. Identical stacks are merged (values summed before
// rounding) and lines are sorted, so the output is byte-for-byte reproducible.

import { escapeControls } from '../escape.js';
import type { Frame } from '../format/types.js';
import { frameLabel, NO_STACK_LABEL } from './sites.js';

/**
 * ';' separates frames and a newline ends the line, so neither may appear inside a frame; other
 * control characters are escaped (lib/escape.ts), so that no frame can drive a terminal.
 */
export function foldedFrame(label: string): string {
  return escapeControls(label.replace(/[;\r\n]/g, '_'));
}

/** Frames (leaf first, as stored) as one folded stack, root first; a depth cap shows as a root frame. */
export function foldedStack(framesLeafFirst: Frame[], dropped = 0): string {
  if (framesLeafFirst.length === 0) return NO_STACK_LABEL;
  const parts: string[] = [];
  if (dropped > 0) parts.push(`[${dropped} outer frame${dropped === 1 ? '' : 's'} not recorded]`);
  // Native frames only (a thread without the GIL): rooted at the no-Python-stack mark.
  else if (framesLeafFirst.every((f) => f.native)) parts.push(NO_STACK_LABEL);
  for (let i = framesLeafFirst.length - 1; i >= 0; i--) parts.push(foldedFrame(frameLabel(framesLeafFirst[i]!)));
  return parts.join(';');
}

export class FoldedStacks {
  private readonly values = new Map<string, number>();

  add(stack: string, value: number): void {
    this.values.set(stack, (this.values.get(stack) ?? 0) + value);
  }

  /** Merged, rounded, sorted lines; stacks whose total rounds to 0 or less are left out. */
  lines(): string[] {
    return [...this.sortedLines()];
  }

  /**
   * The same lines in the same order, made one at a time: only the stacks are held, not a second copy of every line, so hp-collapse's memory on a profile is
   * its distinct stacks' text, once.
   */
  *sortedLines(): Generator<string> {
    const stacks: string[] = [];
    for (const [stack, v] of this.values) if (Math.round(v) > 0) stacks.push(stack);
    const line = (s: string): string => `${s} ${Math.round(this.values.get(s)!)}`;
    // Ordering the stacks orders their lines, except where one stack is a prefix of another
    // followed by a space (or a lower character) in it: there, compare the lines themselves.
    const order = (a: string, b: string): number => {
      if (a.length < b.length ? b.charCodeAt(a.length) <= 32 && b.startsWith(a) : a.length > b.length && a.charCodeAt(b.length) <= 32 && a.startsWith(b)) {
        const x = line(a);
        const y = line(b);
        return x < y ? -1 : x > y ? 1 : 0;
      }
      return a < b ? -1 : a > b ? 1 : 0;
    };
    stacks.sort(order);
    for (const stack of stacks) yield line(stack);
  }
}
