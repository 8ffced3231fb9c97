"""The pytest plugin (registered through the package's pytest11 entry point).

    pytest --heapprof[=BASE] [--heapprof-sample SPEC] [--heapprof-top N]

records the whole session into one profile (BASE.hpm/.hpd, default pytest-heapprof; with
pytest-xdist each worker records BASE.gwN) with a mark "start:NODEID" before each test's call
and "end:NODEID" after it, and prints at the end the tests with the largest peak and the
largest growth, each with its 95% interval (what heapprof's own code allocates between the marks
left out). With --heapprof,

    @pytest.mark.limit_memory("24 MB")   fails a test whose peak's LOWER 95% bound exceeds 24 MB
    @pytest.mark.limit_leaks("1 MB")     the same for memory allocated in the test, live at its end

Everything here is computed in Python from the recorder's files (heapprof._reader), so node is
not needed; the profile is an ordinary one for the hp-* commands (--at mark:start:NODEID).
Without --heapprof the markers are accepted and not checked (the summary says how many).
Alone, the plugin sees Python's allocator only; under `hp-record --native -m pytest --heapprof`
it marks and reads hp-record's profile, C allocations included.
"""

import math
import os
import zlib

import pytest

import heapprof
from heapprof import _reader

_PACKAGE_DIR = os.path.dirname(os.path.abspath(heapprof.__file__))

DEFAULT_BASE = "pytest-heapprof"
DEFAULT_SAMPLE = "64K"

def pytest_addoption(parser):
    group = parser.getgroup("heapprof", "heap profiling with heapprof")
    group.addoption("--heapprof", action="store", nargs="?", const=DEFAULT_BASE, default=None, metavar="BASE",
                    help="record the session into BASE.hpm/.hpd (default %s; write --heapprof=BASE), "
                         "mark each test, report the largest peaks and growths, check limit_memory and "
                         "limit_leaks markers" % DEFAULT_BASE)
    group.addoption("--heapprof-sample", action="store", default=DEFAULT_SAMPLE, metavar="SPEC",
                    help="sampling: mean bytes between samples ('64K', the default), a size-range table "
                         "('{128: 1e-4, 8192: 0.1}'), or '{}' to record every allocation (exact)")
    group.addoption("--heapprof-top", action="store", type=int, default=5, metavar="N",
                    help="how many tests each table of the summary lists (default 5)")


def pytest_configure(config):
    config.addinivalue_line("markers", "limit_memory(size): with --heapprof, fail the test when its peak "
                                       "memory growth exceeds size ('24 MB'; K/M/G are powers of 1024) by "
                                       "more than the sampling error")
    config.addinivalue_line("markers", "limit_leaks(size): with --heapprof, fail the test when the memory it "
                                       "allocated and left live exceeds size by more than the sampling error")
    base = config.getoption("heapprof")
    if base is None:
        config.pluginmanager.register(_Unchecked(), "heapprof-unchecked")
        return
    worker = getattr(config, "workerinput", None)
    if worker is None:
        _check_options(config, base)
    if worker is None and _distributing(config):
        config.pluginmanager.register(_Controller(config), "heapprof-controller")
        return
    if worker is not None:
        base = "%s.%s" % (base, worker["workerid"])
    config.pluginmanager.register(_Recorder(config, base, worker is not None), "heapprof-recorder")


def _distributing(config):
    """Whether pytest-xdist runs the tests in workers, by its own rule: a distribution mode and
    test environments (-n N sets both; --tx 2*popen --dist load, or -d --tx ..., set them without
    -n). Not with --collect-only, where xdist starts no workers."""
    option = config.option
    return (getattr(option, "dist", "no") != "no" and bool(getattr(option, "tx", None))
            and not getattr(option, "collectonly", False))


def _check_options(config, base):
    """Everything that would make each worker (pytest-xdist) fail with a traceback, refused once,
    before any test runs, as a usage error (exit status 4)."""
    args = list(config.invocation_params.args)
    for i, arg in enumerate(args[:-1]):
        # `--heapprof tests/`: the path became the profile's name and pytest runs from rootdir.
        if arg == "--heapprof" and args[i + 1] == base and (os.path.exists(base) or base.endswith(".py") or "::" in base):
            raise pytest.UsageError("--heapprof took %r as the profile's name, and it names tests; write "
                                    "--heapprof=BASE, or put --heapprof after the test paths" % base)
    _parse_sample(config.getoption("heapprof_sample"))
    if config.getoption("heapprof_top") < 0:
        raise pytest.UsageError("--heapprof-top %d: expected a count >= 0" % config.getoption("heapprof_top"))
    # A profile's name, also for pytest-xdist's workers, which append .gwN to it (DIR/ and ''
    # would make them write the hidden files DIR/.gw0.hpm, .gw0.hpm).
    if not base:
        raise pytest.UsageError("--heapprof=: the profile needs a name (--heapprof=BASE)")
    try:
        heapprof._check_base(base)
    except ValueError as err:
        raise pytest.UsageError("--heapprof=%s: %s" % (base, err))
    directory = os.path.dirname(os.path.abspath(base))
    if heapprof.isProfiling():
        return  # under hp-record: its profile is marked, BASE is not written
    if not os.path.isdir(directory):
        raise pytest.UsageError("--heapprof=%s: no directory %s for the profile" % (base, directory))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise pytest.UsageError("--heapprof=%s: directory %s is not writable" % (base, directory))


def _parse_sample(spec):
    spec = spec.strip()
    try:
        if spec.startswith("{"):
            return {"sampling_rate": heapprof.parse_table(spec)}
        return {"sample_bytes": heapprof.parse_bytes(spec)}
    except heapprof.SamplingError as err:
        raise pytest.UsageError("--heapprof-sample %s: %s" % (spec, err))


def _limit(item, name):
    marker = item.get_closest_marker(name)
    if marker is None:
        return None
    # A test failure (without the plugin's traceback), not a usage error: the other tests run.
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail("heapprof: @pytest.mark.%s takes one size, e.g. %s('24 MB')" % (name, name), pytrace=False)
    try:
        return _reader.parse_size(marker.args[0])
    except ValueError as err:
        pytest.fail("heapprof: @pytest.mark.%s: %s" % (name, err), pytrace=False)


class _Session:
    """Consumes the profile's events: one Window per test between its start and end marks."""

    def __init__(self, profile):
        self.profile = profile
        self.open = {}  # nodeid -> Window
        self.done = {}  # nodeid -> Window (closed)
        self.results = []
        self._own = {}  # trace -> whether its innermost Python frame is heapprof's own code

    @property
    def idle(self):
        return not self.open

    def event(self, kind, t, trace, size):
        if kind <= 1 and self.open and not self._is_own(trace):
            for w in self.open.values():
                w.event(kind, trace, size, t)

    def _is_own(self, trace):
        """True for a trace allocated by heapprof's own Python code (this plugin's hook around the
        test, heapprof.mark): what the profiler costs is not the test's memory, and a sampled
        allocation there would otherwise be blamed as the test's top site."""
        own = self._own.get(trace)
        if own is None:
            python = self.profile.traces.get(trace, (None, None, 0))[0]
            path = self.profile.frames.get(python, ("?", "", 0))[1] if python is not None else ""
            own = self._own[trace] = bool(path) and os.path.dirname(os.path.abspath(path)) == _PACKAGE_DIR
        return own

    def mark(self, t, label):
        what, _, nodeid = label.partition(":")
        if what == "start":
            # Seeded by the test: one profile always gives the same figures.
            self.open[nodeid] = _reader.Window(self.profile.sampler, t, seed=zlib.crc32(nodeid.encode("utf-8", "replace")))
        elif what == "end" and nodeid in self.open:
            w = self.open.pop(nodeid)
            w.end_us = t
            self.done[nodeid] = w

    def result(self, nodeid):
        """The closed window of a test as a plain dict (workers send these to the controller)."""
        w = self.done.pop(nodeid, None)
        if w is None:
            return None
        leaked, leaked_var, per_trace = w.leaked()
        top_peak = w.top_peak_trace()
        top_leak = max(per_trace, key=per_trace.get) if per_trace else None
        r = {
            "nodeid": nodeid, "start": w.start_us / 1e6, "end": w.end_us / 1e6,
            "peak": w.peak, "peak_var": w.peak_var, "leaked": leaked, "leaked_var": leaked_var,
            "peak_site": None if top_peak is None else self.profile.site(top_peak[0]),
            "peak_site_bytes": 0.0 if top_peak is None else top_peak[1],
            "leak_site": None if top_leak is None else self.profile.site(top_leak),
            "leak_site_bytes": 0.0 if top_leak is None else per_trace[top_leak],
        }
        self.results.append(r)
        return r

    def drain(self):
        for nodeid in list(self.done):
            self.result(nodeid)


def _estimate(value, variance):
    lo, hi = _reader.interval95(max(0.0, value), variance)
    text = _reader.format_bytes(max(0.0, value))
    if variance > 0:
        text += " (95%%: %s .. %s)" % (_reader.format_bytes(lo), _reader.format_bytes(hi))
    return text, lo


class _Recorder:
    def __init__(self, config, base, is_worker):
        self.config = config
        self.base = base
        self.is_worker = is_worker
        self.owned = False
        if heapprof.isProfiling():
            # Already recording (pytest run under hp-record): mark that profile, don't start another.
            self.base = heapprof._state["base"]
            self.path = heapprof._state.get("path") or os.path.abspath(self.base)
        else:
            try:
                heapprof.start(base, force=True, argv=["pytest"] + list(config.invocation_params.args),
                               **_parse_sample(config.getoption("heapprof_sample")))
            except (RuntimeError, OSError, ValueError) as err:
                raise pytest.UsageError("heapprof: cannot record %s: %s" % (base, err))
            self.owned = True
            self.path = os.path.abspath(base)
        # Read by its absolute name: the files are where the recording started, whatever
        # directory the program or a test changed to since (os.chdir without going back).
        self.session = _Session(_reader.Profile(self.path))

    def _poll(self):
        heapprof.flush()
        lib = heapprof._native.load()
        # Reading allocates: unrecorded, or each read would record more events for the next one.
        lib.hp_ignore_thread(1)
        try:
            self.session.profile.poll(self.session)
        except _reader.ProfileError as err:
            raise pytest.UsageError("heapprof: %s" % err)
        finally:
            lib.hp_ignore_thread(0)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        limits = (_limit(item, "limit_memory"), _limit(item, "limit_leaks"))
        heapprof.mark("start:" + item.nodeid)
        try:
            result = yield
        finally:
            heapprof.mark("end:" + item.nodeid)
        if limits != (None, None):  # only a test that passed: its own failure says more
            self._poll()
            self._check(self.session.result(item.nodeid), *limits)
        return result

    def _check(self, r, limit_memory, limit_leaks):
        if r is None:
            return
        problems = []
        # (what, its estimate in r, the marker, its limit, the top site in r)
        checks = (("peak memory", "peak", "limit_memory", limit_memory, "peak_site"),
                  ("memory allocated and still live at the end", "leaked", "limit_leaks", limit_leaks, "leak_site"))
        for what, key, marker, limit, site in checks:
            if limit is None:
                continue
            text, lo = _estimate(r[key], r[key + "_var"])
            if lo > limit:
                limit_text = _reader.format_bytes(limit)
                if _reader.format_bytes(lo) == limit_text:  # "1.9 MiB exceeds 1.9 MiB": say by how much
                    limit_text += " (%s bytes; the lower bound is %s)" % (format(limit, ","), format(int(math.ceil(lo)), ","))
                problems.append("%s %s exceeds %s %s; top site: %s, %s"
                                % (what, text, marker, limit_text, r[site], _reader.format_bytes(r[site + "_bytes"])))
        if problems:
            pytest.fail("heapprof: " + "; ".join(problems) + " (profile %s)" % self.base, pytrace=False)

    def pytest_sessionfinish(self, session):
        if self.owned:
            heapprof.stop()
        self._poll()
        self.session.drain()
        if self.is_worker:
            self.config.workeroutput["heapprof"] = {"base": self.base, "results": self.session.results,
                                                    "native": self.session.profile.native}

    def pytest_terminal_summary(self, terminalreporter):
        _summary(terminalreporter, [self.base], self.session.results, self.config.getoption("heapprof_top"),
                 self.session.profile.native)


class _Unchecked:
    """Without --heapprof: counts the tests whose limit markers go unchecked, and says so."""

    def __init__(self):
        self.count = 0

    def pytest_collection_finish(self, session):
        # The tests that will run: after -k, -m and other deselection.
        items = session.items
        self.count = sum(1 for i in items if i.get_closest_marker("limit_memory") or i.get_closest_marker("limit_leaks"))

    def pytest_terminal_summary(self, terminalreporter):
        if self.count:
            terminalreporter.write_line("heapprof: limit_memory/limit_leaks not checked in %d test%s (run with --heapprof)"
                                        % (self.count, "" if self.count == 1 else "s"))


class _Controller:
    """pytest-xdist's controller: records nothing, prints the workers' results together."""

    def __init__(self, config):
        self.config = config
        self.bases = []
        self.results = []
        self.native = True  # until a worker's profile says otherwise

    def pytest_testnodedown(self, node, error):
        out = getattr(node, "workeroutput", {}).get("heapprof")
        if out:
            self.bases.append(out["base"])
            self.results.extend(out["results"])
            self.native = self.native and out.get("native", False)

    def pytest_terminal_summary(self, terminalreporter):
        _summary(terminalreporter, sorted(self.bases), self.results, self.config.getoption("heapprof_top"),
                 self.native and bool(self.bases))


def _summary(tr, bases, results, top, native):
    tr.write_sep("=", "heapprof")
    tr.write_line("profile%s: %s (%d test%s)" % ("s" if len(bases) > 1 else "", ", ".join(bases), len(results),
                                                "" if len(results) == 1 else "s"))
    if not native:
        tr.write_line("counted: Python's allocator only; C extensions' malloc and mmap (numpy, pandas...) too "
                      "with: hp-record --native -m pytest --heapprof")
    for title, key in (("largest peak (growth over the test's start)", "peak"),
                       ("largest growth (allocated in the test, live at its end)", "leaked")):
        ranked = sorted((r for r in results if r[key] > 0), key=lambda r: -r[key])[:top]
        if not ranked:
            continue
        tr.write_line("%s:" % title)
        for r in ranked:
            text, _ = _estimate(r[key], r[key + "_var"])
            site = r["peak_site" if key == "peak" else "leak_site"]
            tr.write_line("  %-40s %s  at %s" % (r["nodeid"], text, site))
    if bases:
        tr.write_line("read with: hp-history %s --from mark:start:NODEID --to mark:end:NODEID" % bases[0])
