"""Start-up self-test of the native stack walk: walk a known call chain natively and with
traceback, and compare function, file and line of every frame. Wrong struct offsets give
plausible but wrong stacks, so a mismatch turns stack capture off instead."""

import ctypes
import traceback


def _native_and_python(lib):
    buf = ctypes.create_string_buffer(1 << 17)
    # Both on one line, so both see the same line number for this frame.
    n, expected = lib.hp_debug_walk(buf, len(buf)), traceback.extract_stack()
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
    """Returns None when the native walk matches traceback, else a one-line reason."""
    n, text, expected = _chain_a(lib)
    if n < 0:
        return "the native walk is unavailable"
    native = [tuple(line.split("\t")) for line in text.splitlines()]
    python = [(f.name, f.filename, str(f.lineno)) for f in reversed(expected)]
    if len(native) != n:
        return "native walk output truncated"
    if native != python:
        for i, (got, want) in enumerate(zip(native, python)):
            if got != want:
                return "frame %d: native %s:%s in %s, traceback %s:%s in %s" % (
                    i, got[1], got[2], got[0], want[1], want[2], want[0])
        return "native walk has %d frames, traceback %d" % (len(native), len(python))
    return None
