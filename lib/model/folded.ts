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
    const out: string[] = [];
    for (const [stack, v] of this.values) {
      const n = Math.round(v);
      if (n > 0) out.push(`${stack} ${n}`);
    }
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
