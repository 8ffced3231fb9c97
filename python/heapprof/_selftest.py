"""Start-up self-test of the native stack walk: walk a known call chain natively and through
the interpreter's own frame objects, and compare function, file and line of every frame. Wrong
struct offsets give plausible but wrong stacks, so a mismatch turns stack capture off instead.
(The frames are read with sys._getframe, as traceback.extract_stack does, without importing
traceback: every hp-record run pays for what this module imports.)"""

import ctypes
import sys


def _python_stack():
    """(function, file, line) of the caller's frame and every frame below it, outermost first."""
    frames = []
    f = sys._getframe(1)
    while f is not None:
        frames.append((f.f_code.co_name, f.f_code.co_filename, str(f.f_lineno)))
        f = f.f_back
    frames.reverse()
    return frames


def _native_and_python(lib):
    buf = ctypes.create_string_buffer(1 << 17)
    # Both on one line, so both see the same line number for this frame.
    n, expected = lib.hp_debug_walk(buf, len(buf)), _python_stack()
    return n, buf.value.decode("utf-8", "replace"), expected


class _Probe:
    def method(self, lib):
        return [r for r in _generator(lib)][0]


def _generator(lib):
    yield (lambda: _native_and_python(lib))()


def _chain_b(lib):
    return _Probe().method(lib)


def _chain_a(lib):
    return _chain_b(lib)


def run(lib):
    """Returns None when the native walk matches the interpreter's frames, else a one-line reason."""
    n, text, expected = _chain_a(lib)
    if n < 0:
        return "the native walk is unavailable"
    native = [tuple(line.split("\t")) for line in text.splitlines()]
    python = list(reversed(expected))
    if len(native) != n:
        return "native walk output truncated"
    if native != python:
        for i, (got, want) in enumerate(zip(native, python)):
            if got != want:
                return "frame %d: native %s:%s in %s, interpreter %s:%s in %s" % (
                    i, got[1], got[2], got[0], want[1], want[2], want[0])
        return "native walk has %d frames, the interpreter %d" % (len(native), len(python))
    return None
