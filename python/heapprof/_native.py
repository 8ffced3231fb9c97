"""The one place that loads the native hook (heapprof_hook.so) and declares its C interface.

The library is a plain shared object built by node-gyp (binding.gyp); it is loaded with
ctypes.PyDLL so that every call into it holds the GIL, and with RTLD_NODELETE so that its
allocator wrappers, once installed, can never be unmapped.
"""

import ctypes
import os
import sys

LIB_ENV = "HEAPPROF_NATIVE_LIB"
LIB_NAME = "heapprof_hook.so"

_lib = None


def library_candidates():
    """Where the library may be, in order: $HEAPPROF_NATIVE_LIB; the node-gyp output of the
    checkout or npm package this directory belongs to (python/heapprof -> ../../build/Release),
    the library hp-record preloads (--native) and loads into a process (--pid); the copy pip
    built into the package (heapprof/heapprof_hook.so, see python/setup.py). A package imported
    from a checkout can hold both (`pip install -e ./python` builds the hook in place): the
    node-gyp build comes first, so that hp-record's process has one hook, not that copy too, and
    a rebuild with node-gyp is not shadowed by an older copy."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    found = []
    if os.environ.get(LIB_ENV):
        found.append(os.environ[LIB_ENV])
    for build in ("Release", "Debug"):
        found.append(os.path.join(root, "build", build, LIB_NAME))
    found.append(os.path.join(here, LIB_NAME))
    return found


def load():
    """Loads (once) and returns the library; raises RuntimeError saying where it looked."""
    global _lib
    if _lib is not None:
        return _lib
    paths = library_candidates()
    chosen = os.environ.get(LIB_ENV)
    if chosen and not os.path.isfile(chosen):
        # Named explicitly: not passed over for another copy without a word.
        raise RuntimeError("%s=%s: no such file" % (LIB_ENV, chosen))
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        raise RuntimeError(
            "native hook not built: none of %s exists (pip install the package from a heapprof checkout, run `npx node-gyp rebuild` in the checkout, or set %s)"
            % (", ".join(paths), LIB_ENV)
        )
    mode = getattr(os, "RTLD_NOW", 2) | getattr(os, "RTLD_NODELETE", 0x1000)
    try:
        lib = ctypes.PyDLL(path, mode=mode)
        lib.hp_start  # a library that is not heapprof's has no such symbol
    except (OSError, AttributeError) as err:
        raise RuntimeError("%s: cannot load heapprof's native hook: %s" % (path, err))
    u64p = ctypes.POINTER(ctypes.c_uint64)
    f64p = ctypes.POINTER(ctypes.c_double)
    sigs = {
        "hp_init": (ctypes.c_int, []),
        "hp_error": (ctypes.c_char_p, []),
        "hp_install": (ctypes.c_int, []),
        "hp_start": (
            ctypes.c_int,
            [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, u64p, f64p, ctypes.c_double,
             ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
        ),
        "hp_stop": (ctypes.c_int, []),
        "hp_is_active": (ctypes.c_int, []),
        "hp_subinterpreter": (ctypes.c_int, []),
        "hp_flush": (None, []),
        "hp_histogram": (ctypes.c_int, [u64p, ctypes.c_int]),
        "hp_counters": (None, [u64p]),
        "hp_disk_counters": (None, [u64p]),
        "hp_write_error": (ctypes.c_char_p, []),
        "hp_debug_walk": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t]),
        "hp_set_capture": (None, [ctypes.c_int]),
        "hp_no_stderr": (None, []),
        "hp_capture": (ctypes.c_int, []),
        "hp_memory": (None, [u64p]),
        "hp_watch_parent": (ctypes.c_int, [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]),
        "hp_mark": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t]),
        "hp_ignore_thread": (None, [ctypes.c_int]),
        "hp_set_attached": (None, [ctypes.c_uint64]),
        "hp_native": (ctypes.c_int, []),
        "hp_peak_estimate": (ctypes.c_double, []),
        "hp_wrap_builtin": (
            ctypes.py_object,
            [ctypes.py_object, ctypes.py_object, ctypes.py_object, ctypes.py_object, ctypes.c_char_p, ctypes.c_char_p],
        ),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    lib.path = path
    if sys.__stderr__ is None:
        # Python started with descriptor 2 closed: the recorder's warnings must not go to a
        # file the program opens at that number later (hp-record's bootstrap says so itself).
        lib.hp_no_stderr()
    after_fork = getattr(lib, "hp_after_fork_parent", None)  # absent from older builds
    if after_fork is not None and sys.version_info[:2] == (3, 12):
        # The recorder's threads are stopped over a fork (3.12 warns about a fork with
        # threads, counting them first) and come back here, after that count.
        after_fork.restype = None
        after_fork.argtypes = []
        os.register_at_fork(after_in_parent=after_fork)
    _lib = lib
    return lib


def error_text(lib):
    msg = lib.hp_error()
    return msg.decode("utf-8", "replace") if msg else "unknown error"
