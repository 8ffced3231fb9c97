// Node decodes its command line as UTF-8 and turns every byte sequence that is not UTF-8 into
// U+FFFD: the original bytes are then only in /proc/self/cmdline. hp-record uses them to give the
// program its own arguments back (lib/cmd/record.ts); every command uses them to say why a file
// named by such an argument cannot be opened.

import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The NUL-separated entries of /proc/PID/cmdline or /proc/PID/environ. */
export function splitNul(data: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0) {
      parts.push(data.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < data.length) parts.push(data.subarray(start));
  return parts;
}

export { isUtf8 };

/** This process's arguments that are not UTF-8, as Node decoded them (U+FFFD for each bad sequence); [] without /proc. */
export function nonUtf8Arguments(proc = '/proc/self'): string[] {
  try {
    return splitNul(readFileSync(join(proc, 'cmdline')))
      .filter((raw) => !isUtf8(raw))
      .map((raw) => raw.toString('utf8'));
  } catch {
    return [];
  }
}

/**
 * Whether the argument `text` came from bytes that are not UTF-8 (Node turned them into U+FFFD):
 * its original is an entry of /proc/self/cmdline that is not UTF-8 and decodes to text (or to
 * --option=text, -otext).
 */
export function fromNonUtf8Argument(text: string, proc = '/proc/self'): boolean {
  if (!text.includes('\ufffd')) return false;
  return nonUtf8Arguments(proc).some((arg) => arg.endsWith(text));
}

/**
 * The hint for an error message that names a file given by such an argument: Node cannot pass the
 * name's bytes to the file system, so it looked for another name. Null when the message names none.
 */
export function nonUtf8NameHint(message: string, proc = '/proc/self'): string | null {
  if (!message.includes('\ufffd')) return null;
  const named = nonUtf8Arguments(proc).some((arg) => {
    const value = arg.startsWith('-') && arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : arg;
    return value.includes('\ufffd') && message.includes(value);
  });
  return named ? 'the name is not UTF-8, and Node.js, which heapprof runs on, cannot open a file by such a name: rename it, or link it under a UTF-8 name (ln -s)' : null;
}
