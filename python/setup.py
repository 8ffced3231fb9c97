"""pip install for the heapprof Python package.

`pip install ./python` (from a checkout) or `pip install "$(npm root -g)/heapprof/python"` (from
the npm package) compiles the native hook, heapprof_hook.so, from the C sources in the sibling
native/ directory with the C compiler Python's own build uses, and installs it inside the
package (heapprof/heapprof_hook.so). The library does not include Python.h: the same .so
serves every CPython 3.9-3.13, so the wheel is tagged for this interpreter only by habit.

Without the sibling native/ directory (this directory copied elsewhere), nothing is compiled
and the package looks for the hook at run time in $HEAPPROF_NATIVE_LIB (see heapprof/_native.py).
"""

import glob
import json
import os
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.path.join(os.path.dirname(HERE), "native")


def _writable_source():
    """pip builds in the source directory (setuptools writes build/ and heapprof.egg-info there,
    and _hook_extension copies the C sources under build/). Where that directory is read-only
    (the npm package installed globally by root, pip-installed by a user), build from a copy of
    python/, native/ and binding.gyp in a temporary directory, removed when this build ends."""
    if os.access(HERE, os.W_OK | os.X_OK):
        return HERE
    import atexit
    import tempfile

    root = tempfile.mkdtemp(prefix="heapprof-build-")
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(HERE, os.path.join(root, "python"), ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    if os.path.isdir(NATIVE):
        shutil.copytree(NATIVE, os.path.join(root, "native"))
    gyp = os.path.join(os.path.dirname(HERE), "binding.gyp")
    if os.path.isfile(gyp):
        shutil.copy2(gyp, root)
    for directory, _dirs, files in os.walk(root):  # copytree kept the read-only modes
        os.chmod(directory, 0o700)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o600)
    return os.path.join(root, "python")


def _one_build_at_a_time():
    """Several builds from one source directory at once (tox -p, a CI matrix of Pythons, two
    venvs installed in parallel) share build/ and heapprof.egg-info: one removed the other's
    build/bdist.* staging directory, giving a failed build or, worse, a wheel without the package
    that pip installed without a word. Each setup.py run (one per PEP 517 step) holds an
    exclusive lock on build/.setup.lock until it exits; the next one waits."""
    if HERE != os.path.dirname(os.path.abspath(__file__)):
        return  # a private copy (_writable_source)
    try:
        import fcntl
    except ImportError:
        return
    os.makedirs(os.path.join(HERE, "build"), exist_ok=True)
    fd = os.open(os.path.join(HERE, "build", ".setup.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    # A POSIX record lock: held by the process, so setup.py run again in it does not wait for
    # itself; released when the process ends.
    fcntl.lockf(fd, fcntl.LOCK_EX)
    _one_build_at_a_time.fd = fd


HERE = _writable_source()
NATIVE = os.path.join(os.path.dirname(HERE), "native")
os.chdir(HERE)  # setuptools' build/ and egg-info go to the working directory
_one_build_at_a_time()


def _hook_target():
    """The hook's target in binding.gyp (the node-gyp build is the reference), or None."""
    try:
        with open(os.path.join(os.path.dirname(HERE), "binding.gyp")) as f:
            gyp = json.load(f)
        return next(t for t in gyp["targets"] if t["target_name"] == "heapprof_hook")
    except (OSError, ValueError, KeyError, StopIteration):
        return None


def _hook_sources():
    """The hook's C files as binding.gyp lists them."""
    target = _hook_target()
    return [os.path.basename(s) for s in target.get("sources", [])] if target else []


def _hook_libraries():
    """The libraries binding.gyp links the hook with ("-lm" -> "m")."""
    target = _hook_target()
    return [lib[2:] for lib in target.get("libraries", []) if lib.startswith("-l")] if target else []


def _hook_extension():
    HOOK_SOURCES = _hook_sources()
    if not HOOK_SOURCES:
        return []
    if not all(os.path.isfile(os.path.join(NATIVE, s)) for s in HOOK_SOURCES):
        return []
    # setuptools wants sources relative to this directory and under it: copy them into build/.
    src = os.path.join("build", "hook-src")
    os.makedirs(os.path.join(HERE, src), exist_ok=True)
    for path in glob.glob(os.path.join(NATIVE, "*.[ch]")):
        shutil.copy2(path, os.path.join(HERE, src, os.path.basename(path)))
    return [
        Extension(
            "heapprof.heapprof_hook",
            sources=[os.path.join(src, s) for s in HOOK_SOURCES],
            extra_compile_args=["-O2", "-std=gnu11", "-fvisibility=hidden"],
            libraries=_hook_libraries(),
        )
    ]


class BuildPlainLibrary(build_ext):
    """The hook is a plain shared library loaded with ctypes, not an extension module: it keeps
    binding.gyp's name (heapprof_hook.so, no ABI suffix) and exports no PyInit function."""

    def get_ext_filename(self, ext_name):
        return os.path.join(*ext_name.split(".")) + ".so"

    def get_export_symbols(self, ext):
        return []


setup(
    name="heapprof",
    version="2.0.0.dev0",
    description="A logging, sampling heap profiler for CPython: the recorder API, a pytest plugin and an IPython magic",
    license="MIT",
    python_requires=">=3.9",
    packages=["heapprof"],
    ext_modules=_hook_extension(),
    cmdclass={"build_ext": BuildPlainLibrary},
    entry_points={"pytest11": ["heapprof = heapprof.pytest_plugin"]},
    zip_safe=False,
)
