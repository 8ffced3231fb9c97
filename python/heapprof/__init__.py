"""heapprof: a logging, sampling heap profiler for CPython 3.9-3.13.

    import heapprof
    heapprof.start('run', {128: 1e-4, 8192: 0.1})   # writes run.hpm and run.hpd
    heapprof.mark('loaded')                          # a named instant in the timeline
    heapprof.stop()

    with heapprof.Tracker('run', sample_bytes='512K'):
        ...

Then read the profile with the hp-* commands (hp-history run, hp-snapshot run --at mark:loaded).
Install with `pip install ./python` from a checkout (or "$(npm root -g)/heapprof/python"): pip
compiles the native hook into the package. Without installing, put that `python` directory on
PYTHONPATH; the hook is then found in the checkout's build/Release, or wherever
$HEAPPROF_NATIVE_LIB points.

(PYTEST_DONT_REWRITE: hp-record imports this package before the program starts, so pytest, which
would rewrite the asserts of its plugin's package, must not warn that it came too late.)
"""

import atexit
import ctypes
import os
import struct
import sys

from . import _native, _selftest
from ._sampling import DEFAULT_TABLE, SamplingError, check_bytes, check_table, parse_bytes, parse_table

__all__ = [
    "start", "stop", "gatherStats", "isProfiling", "flush", "histogram", "counters", "mark",
    "Tracker", "gather_stats", "is_profiling", "format_stats", "DEFAULT_SAMPLING_RATE",
    "SamplingError", "parse_table", "parse_bytes", "MAX_MARK_BYTES",
]

#: The longest mark label, in UTF-8 bytes.
MAX_MARK_BYTES = 4096

#: The seed's default: sizes < 128 at p=1e-4, 128..8191 at 0.1, >= 8192 always.
DEFAULT_SAMPLING_RATE = dict(DEFAULT_TABLE)

_MODE_PROFILE, _MODE_STATS = 0, 1
_FOLLOW_FORK, _OVERWRITE, _NO_STACKS, _NATIVE, _NATIVE_STACKS = 1, 2, 4, 8, 16
_HIST_BUCKETS = 64

# generation: the number of the last recording started (1, 2, ...). watch_next: hp-record's
# bootstrap and --pid set it before their start(); that recording's summary is then kept in
# watched when it stops, whoever stops it (see _stop_generation).
_state = {"selftest": None, "hooks": False, "mode": None, "base": None, "path": None, "generation": 0,
          "watch_next": False, "watched": {}}


def _library():
    """Loads the hook, checks the interpreter, runs the self-test once, installs the
    allocator wrappers. Raises RuntimeError when this interpreter cannot be recorded."""
    if "t" in getattr(sys, "abiflags", ""):  # 3.13t; sysconfig would say the same, slower
        raise RuntimeError("free-threaded CPython is not supported")
    lib = _native.load()
    if lib.hp_init() < 0:
        raise RuntimeError(_native.error_text(lib))
    if lib.hp_subinterpreter():
        # The recorder is the process's, its state here the interpreter's own: a subinterpreter
        # that started or stopped a recording would start or stop the main interpreter's.
        raise RuntimeError("heapprof records from the main interpreter only: a subinterpreter cannot start "
                           "a recording (its allocations are in the main interpreter's, under <subinterpreter>)")
    if not _state["hooks"]:
        if lib.hp_install() != 0:
            raise RuntimeError(_native.error_text(lib))
        _state["hooks"] = True
        _wrap_os_exit()
        _wrap_os_exec()
    if _state["selftest"] is None:
        _state["selftest"] = _capture_refusal() or _selftest.run(lib) or ""
    return lib


def _capture_refusal():
    """Builds whose struct layouts differ from the release builds the walk was written for:
    not even the self-test may read their frames."""
    if hasattr(sys, "gettotalrefcount"):
        return "debug builds of CPython are not supported"
    if struct.calcsize("P") != 8:
        return "only 64-bit CPython is supported"
    return None


def _at_real_exit(fn):
    """An atexit handler that calls fn() only as the interpreter exits. The program may call
    atexit._run_exitfuncs() itself (some test runners and frameworks do): the handlers then
    run from its Python code, not at exit, and the registry is emptied. There the handler
    registers itself again and returns, so recording goes on until the real exit."""

    def handler():
        if sys._getframe().f_back is not None:
            atexit.register(handler)
            return
        fn()

    return handler


def _stop_if_profiling():
    if isProfiling():
        stop()


# Registered as the package is imported, not at the first start(): a program's handlers
# registered after `import heapprof` run before it, also those registered before start(), so
# what they allocate or mark at exit is recorded. (A no-op when nothing was started.)
_at_exit = _at_real_exit(_stop_if_profiling)
atexit.register(_at_exit)


def _wrap_os(name, before):
    """Replaces os.NAME (and posix.NAME, the same function) with one that calls before(), then
    the real one with the same arguments: the program's exit or exec always happens."""
    real = getattr(os, name, None)
    if real is None:
        return
    wrapper = _builtin_wrapper(real, before) or _python_wrapper(real, before)
    setattr(os, name, wrapper)
    posix = sys.modules.get(os.name)
    if posix is not None and getattr(posix, name, None) is real:
        setattr(posix, name, wrapper)


def _builtin_wrapper(real, before):
    """A builtin function like `real` (name, module, __self__, signature: see
    native/pyrt.c, pyrt_wrap_builtin), so that the program sees what it would without the
    profiler; None when real is not a builtin or the hook cannot make one. before()'s
    exceptions are reported as unraisable, never raised."""
    if type(real) is not type(len):
        return None
    sig = getattr(real, "__text_signature__", None)
    doc = real.__doc__ or ""
    if sig:
        doc = "%s%s\n--\n\n%s" % (real.__name__, sig, doc)
    try:
        return _native.load().hp_wrap_builtin(
            real, before, real.__self__, real.__module__, real.__name__.encode(), doc.encode("utf-8", "surrogateescape")
        )  # None when it cannot
    except Exception:
        return None


def _python_wrapper(real, before):
    def wrapper(*args, **kwargs):
        try:
            before()
        finally:
            result = real(*args, **kwargs)
        return result

    wrapper.__name__ = wrapper.__qualname__ = real.__name__
    wrapper.__doc__ = real.__doc__
    wrapper.__wrapped__ = real
    return wrapper


def _wrap_os_exit():
    """os._exit skips atexit (multiprocessing children leave through it): close the profile
    first so that a child recorded with follow_fork loses nothing."""
    _wrap_os("_exit", _stop_if_profiling)


def _wrap_os_exec():
    """os.execv and os.execve (which every os.exec* function calls) replace the process
    without atexit: write what is buffered first, so that the profile keeps everything
    recorded up to the exec (it then ends there, without an end marker). Only a flush, not
    a stop: an exec that fails (os.execvp tries each PATH entry in turn) goes on recording."""
    _wrap_os("execv", flush)
    _wrap_os("execve", flush)


def _blob(items):
    return b"".join(str(s).encode("utf-8", "surrogateescape") + b"\0" for s in items)


def _check_base(base):
    """A profile base as the recorder will use it: no NUL (the C side would cut the name there
    and write another file), and a file name after its directory (not 'dir/', which would write
    the hidden files dir/.hpm and dir/.hpd)."""
    text = os.fsdecode(base)
    if "\0" in text:
        raise ValueError("embedded null byte in the profile name %r" % (text,))
    if os.path.basename(text) in ("", ".", ".."):
        raise ValueError("%r names a directory, not a profile base (BASE for BASE.hpm + BASE.hpd)" % (text,))


def _start(base, mode, table, mean_bytes, follow_fork, force, stacks, argv, notes, native=False, native_stacks=False):
    if base:
        _check_base(base)
    lib = _library()
    notes = list(notes)
    flags = (_FOLLOW_FORK if follow_fork else 0) | (_OVERWRITE if force else 0) | (_NATIVE if native or native_stacks else 0)
    if native_stacks:
        flags |= _NATIVE_STACKS
    if not stacks:
        flags |= _NO_STACKS
        notes.append("stack capture disabled by request")
    elif _state["selftest"]:
        flags |= _NO_STACKS
        note = "stack capture disabled: self-test failed: " + _state["selftest"]
        notes.append(note)
        _write_stderr("heapprof: %s\n" % note)
    if table is not None:
        sampler, bounds, probs = 0, list(table.keys()), list(table.values())
        mean = 0.0
    else:
        sampler, bounds, probs, mean = 1, [], [], mean_bytes
    n = len(bounds)
    c_bounds = (ctypes.c_uint64 * max(n, 1))(*bounds)
    c_probs = (ctypes.c_double * max(n, 1))(*probs)
    argv_blob = _blob(sys.argv if argv is None else argv)
    notes_blob = _blob(notes)
    base_bytes = os.fsencode(base) if base else None
    # Before hp_start, so that none of this is in the profile. Where the files are (the recorder
    # makes a relative base absolute at start too): the program may change directory while recording.
    path = os.path.abspath(os.fsdecode(base)) if base else base
    generation = _state["generation"] + 1
    watch, _state["watch_next"] = _state["watch_next"], False
    if watch:
        _state["watched"][generation] = None
    rc = lib.hp_start(base_bytes, mode, sampler, n, c_bounds, c_probs, mean, flags,
                      argv_blob, len(argv_blob), notes_blob, len(notes_blob))
    if rc != 0:
        _state["watched"].pop(generation, None)
        raise RuntimeError(_native.error_text(lib))
    _state["mode"] = mode
    _state["base"] = base
    _state["path"] = path
    _state["generation"] = generation


def _sampling_args(sampling_rate, sample_bytes):
    """(table, mean bytes) from the two ways of saying how to sample; text is parsed strictly."""
    if sampling_rate is not None and sample_bytes is not None:
        raise SamplingError("give either sampling_rate or sample_bytes, not both")
    if sample_bytes is not None:
        mean = parse_bytes(sample_bytes) if isinstance(sample_bytes, str) else check_bytes(sample_bytes)
        return None, mean
    if isinstance(sampling_rate, str):
        return parse_table(sampling_rate), None
    return check_table(DEFAULT_TABLE if sampling_rate is None else sampling_rate), None


_UNSET = object()


def start(filebase, sampling_rate=None, *, sample_bytes=None, follow_fork=False, force=False,
          stacks=True, argv=None, notes=(), native=False, native_stacks=False, samplingRate=_UNSET):
    """Starts recording to FILEBASE.hpm and FILEBASE.hpd.

    sampling_rate: {size bound: probability}, the seed's size-range table (default
    {128: 1e-4, 8192: 0.1}), or the same as text ('{128: 1e-4, 8192: 0.1}'); sizes at or above
    the last bound are always sampled and {} records every allocation (exact mode).
    sample_bytes=R samples byte-Poisson instead, a mean of R bytes between samples (a number,
    or text such as '512K'). follow_fork: a forked child records to FILEBASE.PID.* (otherwise
    it records nothing). force: replace an existing profile (otherwise it is an error).
    stacks=False records every event under trace 0 ("no Python stack"). samplingRate= is
    accepted as the seed's spelling of sampling_rate.
    native=True also records C allocations (malloc family, anonymous mmap) with their thread;
    this needs heapprof_hook.so preloaded (hp-record --native does it): inside a program
    started without it, C allocations cannot be seen and a one-line warning says so.
    native_stacks=True (implies native=True) gives each sampled C allocation its native
    frames, from the allocator's caller up to the innermost interpreter frame, followed by
    the Python stack (hp-record --native-stacks).
    """
    if samplingRate is not _UNSET:
        if sampling_rate is not None:
            raise TypeError("give sampling_rate or samplingRate, not both")
        sampling_rate = samplingRate
    table, mean = _sampling_args(sampling_rate, sample_bytes)
    if not filebase:
        raise ValueError("filebase must name the profile")
    _start(os.fspath(filebase), _MODE_PROFILE, table, mean, follow_fork, force, stacks, argv, notes, native,
           native_stacks)


def mark(label):
    """Writes a named instant into the timeline of the profile being recorded: readers show it
    (hp-events, hp-history, hp-report) and accept it as a time (--at mark:LABEL). Returns the
    mark's number in this profile (1, 2, ...), or 0 when no profile is being recorded (so
    library code may mark unconditionally)."""
    if not isinstance(label, str):
        raise TypeError("mark label must be a str, not %s" % type(label).__name__)
    try:
        data = label.encode("utf-8", "surrogateescape")  # os.fsdecode's bytes back as they were
    except UnicodeEncodeError:  # a lone surrogate (json.loads('"\\ud800"')): written as \ud800
        data = label.encode("utf-8", "backslashreplace")
    if len(data) > MAX_MARK_BYTES:
        raise ValueError("mark label is %d bytes long; at most %d" % (len(data), MAX_MARK_BYTES))
    if not _state["hooks"] or _state["mode"] != _MODE_PROFILE:
        return 0
    return _native.load().hp_mark(data, len(data))


class Tracker:
    """Records the body of a with statement:

        with heapprof.Tracker('run', sample_bytes='512K') as t:
            t.mark('loaded')

    takes start()'s arguments; the files are t.hpm and t.hpd. Recording stops when the block
    ends, also by an exception (which is not suppressed)."""

    def __init__(self, filebase, sampling_rate=None, **options):
        if not filebase:
            raise ValueError("filebase must name the profile")
        self.filebase = os.fspath(filebase)
        # The names in the type given, as os.path does (start() takes bytes too).
        self.hpm, self.hpd = (self.filebase + ext if isinstance(self.filebase, str) else self.filebase + os.fsencode(ext)
                              for ext in (".hpm", ".hpd"))
        self._sampling_rate = sampling_rate
        self._options = options
        _sampling_args(sampling_rate, options.get("sample_bytes"))  # an error here, not at `with`

    def __enter__(self):
        start(self.filebase, self._sampling_rate, **self._options)
        return self

    def __exit__(self, *exc):
        stop()
        return False

    @staticmethod
    def mark(label):
        return mark(label)

    def __repr__(self):
        return "heapprof.Tracker(%r)" % (self.filebase,)


def gatherStats(filebase=None, *, force=False, argv=None):
    """Starts stats mode: no events, only the power-of-two size histogram of every
    allocation, printed to stderr as HEAP USAGE SUMMARY when stopped (at exit at the
    latest) and, with a filebase, saved in FILEBASE.hpm for hp-stats."""
    _start(os.fspath(filebase) if filebase else "", _MODE_STATS, {}, None, False, force, True, argv, ())


def stop():
    """Stops recording and closes the files (a no-op when not recording)."""
    lib = _native.load() if _state["hooks"] else None
    if lib is None or not lib.hp_stop():
        return
    if _state["generation"] in _state["watched"]:
        try:
            _state["watched"][_state["generation"]] = _summary()
        except Exception:
            pass
    if _state["mode"] == _MODE_STATS:
        _write_stderr(format_stats(histogram()))


def _write_stderr(text):
    # The stats table at exit: through sys.stderr as print() would, but a program that set
    # sys.stderr to None, closed it or gave it a failing writer must neither lose the table
    # nor get an "Error in atexit" it would not print without heapprof: then descriptor 2.
    stream = sys.stderr
    try:
        stream.write(text)
        stream.flush()
        return
    except Exception:
        pass
    if sys.__stderr__ is None:
        return  # descriptor 2 was closed when python started: a later file may have its number
    data = text.encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(2, data):]
    except OSError:
        pass  # descriptor 2 closed too: nowhere to print


def isProfiling():
    """True while recording (in either mode)."""
    return bool(_state["hooks"] and _native.load().hp_is_active())


def flush():
    """Writes buffered blocks now (they are also written every 0.5 seconds)."""
    if _state["hooks"]:
        _native.load().hp_flush()


def histogram():
    """The current size histogram: a list of (low, high, count, bytes, sampled) for each
    non-empty power-of-two bucket [low, high]."""
    if not _state["hooks"]:
        return []
    lib = _native.load()
    raw = (ctypes.c_uint64 * (3 * _HIST_BUCKETS))()
    n = lib.hp_histogram(raw, _HIST_BUCKETS)
    rows = []
    for i in range(n):
        count, nbytes, sampled = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]
        if count:
            low = 0 if i == 0 else 1 << i
            rows.append((low, (1 << (i + 1)) - 1, count, nbytes, sampled))
    return rows


def counters():
    """Totals of the current (or last) recording: a dict with alloc_events, free_events,
    traces, hpm_bytes, hpd_bytes, lost_events."""
    if not _state["hooks"]:
        return None
    raw = (ctypes.c_uint64 * 6)()
    _native.load().hp_counters(raw)
    keys = ("alloc_events", "free_events", "traces", "hpm_bytes", "hpd_bytes", "lost_events")
    return dict(zip(keys, raw))


def format_stats(rows):
    """The seed's HEAP USAGE SUMMARY table: one right-aligned row per size range."""
    table = [("Size range", "Count", "Bytes")]
    table += [("%d - %d" % (lo, hi), str(count), str(nbytes)) for lo, hi, count, nbytes, _ in rows]
    widths = [max(len(r[k]) for r in table) for k in range(3)]
    lines = ["-------------------------------------------", "HEAP USAGE SUMMARY"]
    lines += [" ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in table]
    return "\n".join(lines) + "\n"


# The snake_case spellings of the seed's names.
gather_stats = gatherStats
is_profiling = isProfiling


def _disk_counters():
    """What reached the disk: events_written, traces_written, events_unwritten (recorded,
    then lost to a failed write), write_failed_s (when that write failed, seconds since the
    start; None if none), write_error, forks (followed forks)."""
    lib = _native.load()
    raw = (ctypes.c_uint64 * 5)()
    lib.hp_disk_counters(raw)
    err = lib.hp_write_error()
    return {
        "events_written": raw[0],
        "traces_written": raw[1],
        "events_unwritten": raw[2],
        "write_failed_s": raw[3] / 1e6 if raw[3] else None,
        "write_error": err.decode("utf-8", "replace") if err else "",
        "forks": raw[4],
    }


def _summary():
    """Figures of the current (or last) recording for hp-record's summary. events and traces
    count only what reached the disk; events_unwritten and write_error say what a failed
    write cost; also bytes_written, allocations_seen, sampled_fraction, lost_events, forks,
    and the recorder's own memory now and at its peak (recorder_bytes, recorder_peak_bytes)."""
    c = counters()
    if c is None:
        return {}
    rows = histogram()
    seen = sum(r[2] for r in rows)
    sampled = sum(r[4] for r in rows)
    disk = _disk_counters()
    summary = {
        "events": disk["events_written"],
        "traces": disk["traces_written"],
        "bytes_written": c["hpm_bytes"] + c["hpd_bytes"],
        "allocations_seen": seen,
        "sampled_fraction": (sampled / seen) if seen else 0.0,
        "lost_events": c["lost_events"],
        "forks": disk["forks"],
        "native": bool(_native.load().hp_native()),
        "peak_heap_estimate": _native.load().hp_peak_estimate(),
        "peak_rss": _peak_rss(),
    }
    if disk["write_error"]:
        summary["events_unwritten"] = disk["events_unwritten"]
        summary["write_error"] = disk["write_error"]
        summary["write_failed_s"] = disk["write_failed_s"]
    memory = (ctypes.c_uint64 * 2)()
    _native.load().hp_memory(memory)
    summary["recorder_bytes"] = memory[0]
    summary["recorder_peak_bytes"] = memory[1]
    return summary


def _stop_generation(generation):
    """Stops recording `generation` if it is still the one running: not a recording the program
    started itself after stopping that one (which goes on). Returns that recording's summary
    ({} when it is unknown)."""
    if _state["generation"] == generation and isProfiling():
        stop()
    summary = _state["watched"].pop(generation, None)
    if summary is None and _state["generation"] == generation:
        summary = _summary()  # stopped without stop() (a failed write): the counters are still its own
    return summary or {}


def _peak_rss():
    """Peak resident set size of this process in bytes (0 where unknown)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError, ValueError):
        return 0


def load_ipython_extension(ipython):
    """`%load_ext heapprof` registers the %%heapprof cell magic (heapprof/ipython.py)."""
    from .ipython import load_ipython_extension as load

    load(ipython)
