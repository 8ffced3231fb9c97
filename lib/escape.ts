// The one escaping function for text shown to a person or written as folded stacks: control
// characters from a profile (C0, DEL, C1, U+2028/2029 line separators) could move the cursor,
// retitle a terminal or split a line. Used by every human-readable view, folded stacks and the
// warnings that echo strings read from files.

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * `s` with every control character written as \xHH or \uHHHH; anything else unchanged.
 * `keepNewlines` leaves '\n' alone (messages of several lines on stderr).
 */
export function escapeControls(s: string, keepNewlines = false): string {
  CONTROLS.lastIndex = 0;
  if (!CONTROLS.test(s)) return s;
  return s.replace(CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    if (keepNewlines && code === 10) return c;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
