"""The IPython/Jupyter cell magic:

    %load_ext heapprof
    %%heapprof [-o BASE] [--sample SPEC] [--top N]
    ...cell...

records the cell (into BASE.hpm/.hpd; by default a new temporary base) and shows, as the
cell's output, the peak of the estimated live heap with its 95% interval, the top sites at
the peak and a small history chart: HTML in Jupyter (_repr_html_), text in a terminal IPython.
The cell runs in the notebook's namespace; an exception in it stops the recording and is
raised as usual. The profile is an ordinary one for the hp-* commands (e.g. hp-report BASE).
"""

import argparse
import html
import os
import shlex
import shutil
import tempfile

import heapprof
from heapprof import _reader

DEFAULT_SAMPLE = "64K"
CHART_POINTS = 48
_BARS = " ▁▂▃▄▅▆▇█"


class _Collect:
    """Keeps every alloc/free event of a (small) cell profile, and the marks."""

    def __init__(self):
        self.events = []
        self.marks = []

    def event(self, kind, t, trace, size):
        if kind <= 1:
            self.events.append((kind, t, trace, size))

    def mark(self, t, label):
        self.marks.append((t, label))


class CellProfile:
    """What %%heapprof shows: the peak with its interval, the top sites at the peak, and the
    live heap over the cell's run (CHART_POINTS points)."""

    def __init__(self, base, top=10):
        profile = _reader.Profile(base)
        data = _Collect()
        profile.poll(data)
        sampler = profile.sampler
        self.base = base
        live = 0.0
        events = data.events
        # The cell's run: to the recording's end (its last event, the end marker), not to its
        # last allocation or free.
        end_us = max(profile.last_us, events[-1][1] if events else 0)
        step = max(1, end_us // CHART_POINTS + 1)
        self.history = []
        # The peak, and the sites there, from a Window: the highest point of the estimated live
        # heap is biased upwards, its estimate at a moment chosen independently is not.
        window = _reader.Window(sampler, 0, seed=0)
        # Each point is the highest estimated live heap over its span of the run: the level the
        # events before it left (all a span without events has), and the level after each of its
        # events.
        i = 0
        for bucket in range(CHART_POINTS + 1):
            highest = live
            while i < len(events) and min(CHART_POINTS, events[i][1] // step) <= bucket:
                kind, t, trace, size = events[i]
                w, _v = sampler.weights(size)
                live += w if kind == 0 else -w
                highest = max(highest, live)
                window.event(kind, trace, size, t)
                i += 1
            self.history.append(max(highest, 0.0))
        self.peak, self.peak_var = max(window.peak, 0.0), window.peak_var
        self.peak_t = window.peak_us / 1e6
        self.duration = end_us / 1e6
        ranked = sorted(window.peak_by_trace().items(), key=lambda item: -item[1][0])[:top]
        self.sites = [(profile.site(trace), b, v) for trace, (b, v) in ranked]
        self.marks = data.marks

    def _estimate(self, value, variance):
        lo, hi = _reader.interval95(value, variance)
        if variance <= 0:
            return _reader.format_bytes(value)
        return "%s (95%%: %s .. %s)" % (_reader.format_bytes(value), _reader.format_bytes(lo), _reader.format_bytes(hi))

    def __repr__(self):
        top = max(self.history)
        spark = "".join(_BARS[int(round(v / (top or 1.0) * (len(_BARS) - 1)))] for v in self.history)
        lines = ["heapprof: peak %s at %.3f s of %.3f s (profile %s)"
                 % (self._estimate(self.peak, self.peak_var), self.peak_t, self.duration, self.base),
                 "live heap: |%s| max %s" % (spark, _reader.format_bytes(top))]
        if self.sites:
            lines.append("top sites at the peak:")
            for site, b, v in self.sites:
                lines.append("  %-36s %s" % (self._estimate(b, v), site))
        return "\n".join(lines)

    def _repr_html_(self):
        top = max(self.history)
        n = len(self.history)
        pts = " ".join("%.1f,%.1f" % (i * 300.0 / max(1, n - 1), 58 - v / (top or 1.0) * 54) for i, v in enumerate(self.history))
        rows = "".join("<tr><td style='text-align:right'>%s</td><td><code>%s</code></td></tr>"
                       % (html.escape(self._estimate(b, v)), html.escape(site)) for site, b, v in self.sites)
        return ("<div class='heapprof'><b>heapprof</b>: peak %s at %.3f s of %.3f s "
                "<small>(profile <code>%s</code>)</small><br>"
                "<svg width='300' height='60' viewBox='0 0 300 60' style='border:1px solid #ccc'>"
                "<polyline fill='none' stroke='#2060c0' stroke-width='1.5' points='%s'/></svg>"
                "<br><small>live heap over the cell, max %s</small>"
                "<table><thead><tr><th>live at the peak</th><th>site</th></tr></thead><tbody>%s</tbody></table></div>"
                % (html.escape(self._estimate(self.peak, self.peak_var)), self.peak_t, self.duration,
                   html.escape(self.base), pts, html.escape(_reader.format_bytes(top)), rows))


def _parser():
    p = argparse.ArgumentParser(prog="%%heapprof", add_help=False)
    p.add_argument("-o", "--output", default=None, help="profile base (default: a new temporary one)")
    p.add_argument("--sample", default=DEFAULT_SAMPLE, help="'64K' (mean bytes between samples), a table, or '{}' (every allocation)")
    p.add_argument("--top", type=int, default=10)
    return p


class _UsageError(Exception):
    pass


def run_cell_magic(shell, line, cell):
    """Records `cell` run in `shell` and returns its CellProfile."""
    __tracebackhide__ = True  # noqa: F841
    parser = _parser()
    parser.error = lambda message: (_ for _ in ()).throw(_UsageError("%%heapprof: " + message))
    try:
        words = shlex.split(line)
    except ValueError as err:  # an unbalanced quote
        raise _UsageError("%%%%heapprof: %s: %s" % (line.strip(), str(err).lower()))
    args = parser.parse_args(words)
    if args.top < 0:
        raise _UsageError("%%%%heapprof: --top %d: expected a count >= 0" % args.top)
    sample = args.sample.strip()
    try:
        options = {"sampling_rate": heapprof.parse_table(sample)} if sample.startswith("{") else {"sample_bytes": heapprof.parse_bytes(sample)}
    except heapprof.SamplingError as err:
        raise _UsageError("%%%%heapprof: --sample %s: %s" % (sample, err))
    if heapprof.isProfiling():
        raise _UsageError("%%heapprof: already recording (heapprof.start or hp-record): stop that first")
    try:
        scratch = None if args.output else tempfile.mkdtemp(prefix="heapprof-cell-")
    except OSError as err:  # TMPDIR missing or read-only
        raise _UsageError("%%%%heapprof: cannot make a directory for the profile in %s: %s; name one with -o BASE (the cell did not run)"
                          % (tempfile.gettempdir(), err.strerror or err))
    base = args.output or os.path.join(scratch, "cell")
    try:
        heapprof.start(base, force=True, argv=["%%heapprof", line], **options)
    except (RuntimeError, OSError, ValueError) as err:  # a missing directory, a profile another run writes, -o DIR/
        if scratch:  # nothing was recorded: no empty directory left behind
            shutil.rmtree(scratch, ignore_errors=True)
        raise _UsageError("%%%%heapprof: cannot record %s: %s (the cell did not run)" % (base, err))
    base = os.path.abspath(base)  # where it was created: the cell may change directory
    try:
        _run_cell(shell, cell)
    finally:
        heapprof.stop()
    return CellProfile(base, top=args.top)


def _run_cell(shell, cell):
    """Runs the cell as IPython runs one: its own syntax (%magics, !commands) transformed, and
    compiled under the cell's name, so that tracebacks say Cell In[n] and the recorded sites
    tell the cell's lines apart. (Top-level await is not supported inside %%heapprof.)"""
    __tracebackhide__ = True  # noqa: F841 (IPython leaves this frame out of tracebacks)
    source = shell.transform_cell(cell) if hasattr(shell, "transform_cell") else cell
    compiler = getattr(shell, "compile", None)
    name = "<heapprof cell>"
    cache = getattr(compiler, "cache", None)
    if cache is not None:
        try:
            name = cache(source, shell.execution_count, raw_code=cell)
        except TypeError:  # IPython before 8: no raw_code
            name = cache(source, shell.execution_count)
    code = compiler(source, name, "exec") if callable(compiler) else compile(source, name, "exec")
    exec(code, shell.user_global_ns, shell.user_ns)


def load_ipython_extension(ipython):
    from IPython.core.magic import register_cell_magic  # noqa: F401 (IPython must be there)

    def heapprof_magic(line, cell):
        __tracebackhide__ = True  # noqa: F841
        try:
            return run_cell_magic(ipython, line, cell)
        except (_UsageError, heapprof.SamplingError) as err:
            print(err)
            return None

    heapprof_magic.__doc__ = __doc__
    ipython.register_magic_function(heapprof_magic, magic_kind="cell", magic_name="heapprof")
