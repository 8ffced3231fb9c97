"""A small reader of hpx version 2 profiles (man/hpx.5) for the pytest plugin and the IPython
magic, so that both work where node is not installed. It reads both files incrementally (a
profile being written is readable up to its last flushed block) and hands events, in file
order, to a consumer; the hp-* commands remain the full readers (indexes, v1 files, NDJSON).

Damage is not worked around here: a block with a bad checksum stops reading with an error
(the hp-* readers skip it and go on)."""

import bisect
import decimal
import math
import struct
import zlib

HPM_MAGIC, HPD_MAGIC, BLOCK_MAGIC = b"HPXM", b"HPXD", b"HBLK"
FILE_HEADER, BLOCK_HEADER = 32, 24
REC_STRING, REC_FRAME, REC_TRACE, REC_HISTOGRAM, REC_END, REC_TRACE_INFO, REC_MARK = 1, 2, 3, 4, 5, 7, 8
DOMAINS = ("python", "native", "mmap")
KIND_ALLOC, KIND_FREE, KIND_REPEAT, KIND_EXT = 0, 1, 2, 3
REPEAT_SLOTS = 16
EXT_RSS, EXT_END, EXT_LOST, EXT_MARK = 0, 1, 2, 3
Z95 = 1.959963984540054


class ProfileError(Exception):
    """The profile cannot be read: the message names the file and what is wrong."""


def _varint(buf, pos):
    # Most values fit one byte (record types, lengths, frame ids of a small program).
    if pos < len(buf) and buf[pos] < 0x80:
        return buf[pos], pos + 1
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint at %d" % pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


class _BlockFile:
    """One of the two files: checks the file header once, then yields each new whole block."""

    def __init__(self, path, magic):
        self.path, self.magic = path, magic
        self.offset = 0
        self.body = None  # header body (.hpm)
        self.deflated = False  # .hpm blocks are raw deflate (header flag 1)
        self.profile_id = None

    def new_blocks(self):
        with open(self.path, "rb") as f:
            if self.offset == 0:
                head = f.read(FILE_HEADER)
                if len(head) < FILE_HEADER or head[:4] != self.magic:
                    raise ProfileError("%s: not a heapprof version 2 file" % self.path)
                version, flags = struct.unpack_from("<HH", head, 4)
                if version != 2:
                    raise ProfileError("%s: format version %d (this reader knows 2)" % (self.path, version))
                # .hpd flag 1: its events may be REPEATs, which _events reads; .hpm flag 1:
                # its block payloads are raw deflate.
                if flags & ~1:
                    raise ProfileError("%s: unknown header flags 0x%x" % (self.path, flags))
                self.deflated = self.magic == HPM_MAGIC and bool(flags & 1)
                self.profile_id = head[8:24]
                (length,) = struct.unpack_from("<I", head, 24)
                self.body = f.read(length)
                if len(self.body) < length:
                    raise ProfileError("%s: truncated file header" % self.path)
                self.offset = FILE_HEADER + length
            f.seek(self.offset)
            data = f.read()
        pos = 0
        while len(data) - pos >= BLOCK_HEADER:
            if data[pos:pos + 4] != BLOCK_MAGIC:
                raise ProfileError("%s: byte %d: no block starts here" % (self.path, self.offset + pos))
            n, count, time_us, crc = struct.unpack_from("<IIQI", data, pos + 4)
            end = pos + BLOCK_HEADER + n
            if end > len(data):
                break  # the tail of a profile being written
            payload = data[pos + BLOCK_HEADER:end]
            if zlib.crc32(payload, zlib.crc32(data[pos + 4:pos + 20])) != crc:
                raise ProfileError("%s: block at byte %d: bad checksum" % (self.path, self.offset + pos))
            if self.deflated:
                inflater = zlib.decompressobj(-15)
                payload = inflater.decompress(payload, 64 << 20)
                if not inflater.eof or inflater.unconsumed_tail:
                    raise ProfileError("%s: block at byte %d: bad deflated records" % (self.path, self.offset + pos))
            yield count, time_us, payload
            pos = end
        self.offset += pos


class Sampler:
    """Per-event Horvitz-Thompson weights from the header's sampler (see lib/format/weights.ts)."""

    def __init__(self, bounds=None, probs=None, mean_bytes=None):
        self.bounds, self.probs, self.mean_bytes = bounds or [], probs or [], mean_bytes
        self._cache = {}

    def probability(self, size):
        if self.mean_bytes is not None:
            return -math.expm1(-size / self.mean_bytes) if size > 0 else 0.0
        for bound, p in zip(self.bounds, self.probs):
            if size < bound:
                return p
        return 1.0

    def weights(self, size):
        """(byte weight s/p, byte variance s^2 (1-p)/p^2) for one sampled event of `size` bytes."""
        w = self._cache.get(size)
        if w is None:
            p = self.probability(size)
            if p <= 0:
                w = (0.0, 0.0)
            else:
                w = (size / p, size * size * (1 - p) / (p * p))
            if len(self._cache) < 1 << 16:
                self._cache[size] = w
        return w


class Profile:
    """An hpx v2 profile read so far. poll() reads what was flushed since the last call and
    passes each event to consumer.event(kind, time_us, trace, size_or_value) and each mark to
    consumer.mark(time_us, label), in file order."""

    def __init__(self, base):
        self.base = base
        self.hpm = _BlockFile(base + ".hpm", HPM_MAGIC)
        self.hpd = _BlockFile(base + ".hpd", HPD_MAGIC)
        self.strings = {}
        self.frames = {}
        # trace id -> (its innermost Python frame's id or None, its innermost native frame's id or
        # None, its domain code): all a site label shows (site()).
        self.traces = {0: (None, None, 0)}
        self.trace_info = {}  # trace id -> (domain, leading native frames), read ahead of its TRACE
        self.marks = {}  # id -> (time_us, label)
        self.sampler = None
        self.native = False  # C allocations recorded too (hp-record --native)
        self.complete = False
        self.last_us = 0  # time of the latest event read (any kind: the end marker is the last)

    def _header(self, body):
        pos, bounds, probs, mean = 0, [], [], None
        while pos < len(body):
            tag, pos = _varint(body, pos)
            length, pos = _varint(body, pos)
            field = body[pos:pos + length]
            pos += length
            if tag == 6:
                n, q = _varint(field, 0)
                for _ in range(n):
                    bound, q = _varint(field, q)
                    bounds.append(bound)
                    probs.append(struct.unpack_from("<d", field, q)[0])
                    q += 8
            elif tag == 7:
                mean = struct.unpack_from("<d", field, 0)[0]
            elif tag == 13:
                self.native = _varint(field, 0)[0] != 0
        self.sampler = Sampler(bounds, probs, mean)

    def _records(self):
        for count, _time, payload in self.hpm.new_blocks():
            if self.sampler is None:
                self._header(self.hpm.body)
            pos = 0
            for _ in range(count):
                rtype, pos = _varint(payload, pos)
                length, pos = _varint(payload, pos)
                body = payload[pos:pos + length]
                pos += length
                if rtype == REC_STRING:
                    sid, q = _varint(body, 0)
                    self.strings[sid] = body[q:].decode("utf-8", "replace")
                elif rtype == REC_FRAME:
                    fid, q = _varint(body, 0)
                    fn, q = _varint(body, q)
                    fl, q = _varint(body, q)
                    line, q = _varint(body, q)
                    self.frames[fid] = (self.strings.get(fn, "?"), self.strings.get(fl, "?"), line)
                elif rtype == REC_TRACE_INFO:
                    tid, q = _varint(body, 0)
                    domain, q = _varint(body, q)
                    _thread, q = _varint(body, q)
                    native, q = _varint(body, q)
                    self.trace_info[tid] = (domain, native)
                elif rtype == REC_TRACE:
                    tid, q = _varint(body, 0)
                    _dropped, q = _varint(body, q)
                    n, q = _varint(body, q)
                    # A native recording's trace starts with its C frames: keep the innermost of
                    # those and the innermost Python frame, not the stack.
                    domain, native = self.trace_info.pop(tid, (0, 0))
                    ids = []
                    for _ in range(min(n, native + 1)):
                        fid, q = _varint(body, q)
                        ids.append(fid)
                    self.traces[tid] = (ids[native] if n > native else None, ids[0] if native > 0 and ids else None, domain)
                elif rtype == REC_MARK:
                    mid, q = _varint(body, 0)
                    t, q = _varint(body, q)
                    self.marks[mid] = (t, body[q:].decode("utf-8", "replace"))
        if self.sampler is None and self.hpm.body is not None:
            self._header(self.hpm.body)

    def poll(self, consumer):
        """A consumer whose `idle` attribute is true wants no events until the next mark: blocks
        that cannot hold a mark (none between their time and the next block's) are then not
        decoded, which is what keeps a long pytest session cheap to read."""
        try:
            self._records()
            mark_times = sorted(t for t, _ in self.marks.values())
            blocks = list(self.hpd.new_blocks())
            for i, (count, time_us, payload) in enumerate(blocks):
                if getattr(consumer, "idle", False) and i + 1 < len(blocks):
                    k = bisect.bisect_left(mark_times, time_us)
                    if k == len(mark_times) or mark_times[k] > blocks[i + 1][1]:
                        continue
                self._events(count, time_us, payload, consumer)
        except (ValueError, IndexError, struct.error) as err:
            raise ProfileError("%s: %s" % (self.base, err))

    def _events(self, count, t, payload, consumer):
        pos = 0
        event, mark = consumer.event, consumer.mark
        # The block's REPEAT cache (man/hpx.5, EVENTS): (trace, size) of each ALLOC and FREE
        # written in full, slot after slot round the ring; a REPEAT names a slot.
        rep_trace = [0] * REPEAT_SLOTS
        rep_size = [0] * REPEAT_SLOTS
        filled = nxt = 0
        for _ in range(count):
            # The varints of an event, with the one-byte case inline (the common one).
            h = payload[pos]
            if h < 0x80:
                pos += 1
            else:
                h, pos = _varint(payload, pos)
            dt = payload[pos]
            if dt < 0x80:
                pos += 1
            else:
                dt, pos = _varint(payload, pos)
            t += dt
            kind = h & 3
            if kind == KIND_REPEAT:
                slot = h >> 3
                if slot >= filled:
                    raise ValueError("REPEAT slot %d out of range" % slot if slot >= REPEAT_SLOTS else "REPEAT of an empty slot")
                event((h >> 2) & 1, t, rep_trace[slot], rep_size[slot])
                continue
            v = payload[pos]
            if v < 0x80:
                pos += 1
            else:
                v, pos = _varint(payload, pos)
            if kind <= KIND_FREE:
                event(kind, t, h >> 2, v)
                rep_trace[nxt] = h >> 2
                rep_size[nxt] = v
                nxt = (nxt + 1) & (REPEAT_SLOTS - 1)
                if filled < REPEAT_SLOTS:
                    filled += 1
            elif kind == KIND_EXT:
                body = payload[pos:pos + v]
                pos += v
                ext = h >> 2
                if ext == EXT_MARK:
                    mid, _ = _varint(body, 0)
                    mark(t, self.marks.get(mid, (t, "mark-%d" % mid))[1])
                elif ext == EXT_END:
                    self.complete = True
                elif ext == EXT_RSS:
                    event(EXT_RSS + 100, t, 0, _varint(body, 0)[0])
        if count and t > self.last_us:
            self.last_us = t

    def site(self, trace):
        """A trace's innermost Python frame as 'function (file:line)' (or [no Python stack]),
        as the hp-* commands label a site: a C allocation of a native recording adds its domain
        and the C function that called the allocator, ' [native: function (library)]'."""
        python, caller, domain = self.traces.get(trace, (None, None, 0))
        if python is None:
            label = "[no Python stack]"
        else:
            label = "%s (%s:%d)" % self.frames.get(python, ("?", "?", 0))
        if domain:
            kind = DOMAINS[domain] if domain < len(DOMAINS) else "native"
            if caller is None:
                return "%s [%s]" % (label, kind)
            fn, fl, _line = self.frames.get(caller, ("?", "?", 0))
            return "%s [%s: %s (%s)]" % (label, kind, fn, fl.rsplit("/", 1)[-1])
        return label


class Window:
    """Growth of the live heap between two moments (a test, a cell), from the sampled events in
    between: its highest point (peak) with the variance there, and what is still live at the end
    of the memory allocated in the window.

    The peak is not the highest point of the estimated growth: that maximum is biased upwards
    (with churn, the estimate at its highest is mostly sampling noise, and its 95% interval can
    lie wholly above the truth). Instead each sampled event (inclusion probability p) is split
    into two independent samples A and B, each with probability q = 1 - sqrt(1 - p), by drawing
    which of them hold it (A only, B only or both, in proportions q(1-q) : q(1-q) : q^2): a
    block is then in A with probability q and in B with probability q, independently, as if
    sampled twice. The moment of the peak is where A's estimate is highest; the peak is B's
    estimate at that moment, which, B being independent of that choice, is unbiased for the live
    growth then (at most the true peak), with an honest interval. Exact events (p = 1) are in
    both, so an exact recording ('{}') gives the exact peak. The draws are seeded by `seed`, so
    that one profile always reads the same.

    Frees name the trace and size of what they free, not which allocation: events are netted
    per (trace, size), so a free pays back an allocation of the window with the same trace and
    size first (of a category drawn in proportion to those live; a free of an earlier block gets
    a fresh draw). The leak estimate is the positive part of each (trace, size) net count, from
    every sampled event: a lower bound of what the window allocated and left live."""

    __slots__ = ("sampler", "net", "growth", "var", "peak", "peak_var", "start_us", "end_us", "_rng", "_split",
                 "_live", "_a", "_b", "_bvar", "_a_peak", "_b_by_trace", "_journal", "_peak_by_trace", "peak_us")

    def __init__(self, sampler, start_us, seed=0):
        import random

        self.sampler = sampler
        self.net = {}
        self.growth = self.var = self.peak = self.peak_var = 0.0
        self.start_us = start_us
        self.end_us = None
        self.peak_us = start_us
        self._rng = random.Random(seed)
        self._split = {}  # size -> (q, P(A only | sampled), P(A only or B only | sampled))
        self._live = {}  # (trace, size) -> [A only, B only, both]: the window's live allocations
        self._a = self._b = self._bvar = self._a_peak = 0.0
        self._b_by_trace = {}  # trace -> (bytes, variance): B's estimate of its growth
        # B's growth by trace at the peak: the changes since (undone at the end), or, once those
        # outnumber the traces, a copy.
        self._journal = []
        self._peak_by_trace = None

    def _split_of(self, size):
        """(q, P(A only | sampled), P(A only or B only | sampled)) for this size."""
        split = self._split.get(size)
        if split is None:
            p = self.sampler.probability(size)
            if p >= 1.0:
                split = (1.0, 0.0, 0.0)
            else:
                q = -math.expm1(0.5 * math.log1p(-p))  # 1 - sqrt(1 - p), exact for small p
                one = q * (1.0 - q) / p
                split = (q, one, 2.0 * one)
            if len(self._split) < 1 << 16:
                self._split[size] = split
        return split

    def _category(self, size):
        """(q, 0 = A only, 1 = B only, 2 = both) drawn for a sampled event of this size."""
        q, a_only, single = self._split_of(size)
        u = self._rng.random()
        return q, (0 if u < a_only else 1 if u < single else 2)

    def event(self, kind, trace, size, t=None):
        w, v = self.sampler.weights(size)
        key = (trace, size)
        old = self.net.get(key, 0)
        new = old + 1 if kind == KIND_ALLOC else old - 1
        self.net[key] = new
        self.var += (abs(new) - abs(old)) * v
        self.growth += w if kind == KIND_ALLOC else -w
        if w <= 0:
            return  # a size range sampled at p = 0: never in the profile
        live = self._live.get(key)
        if kind == KIND_ALLOC:
            q, cat = self._category(size)
            if live is None:
                live = self._live[key] = [0, 0, 0]
            live[cat] += 1
            sign = var_sign = 1.0
        else:
            n = live[0] + live[1] + live[2] if live else 0
            if n:
                r = self._rng.randrange(n)
                cat = 0 if r < live[0] else 1 if r < live[0] + live[1] else 2
                live[cat] -= 1
                q = self._split_of(size)[0]
                var_sign = -1.0  # an allocation of the window leaves
            else:
                q, cat = self._category(size)
                var_sign = 1.0  # an earlier block: one more independent term
            sign = -1.0
        weight = size / q
        if cat != 1:
            self._a += sign * weight
        if cat != 0:
            self._b += sign * weight
            vb = size * size * (1.0 - q) / (q * q)
            self._bvar += var_sign * vb
            b, bv = self._b_by_trace.get(trace, (0.0, 0.0))
            self._b_by_trace[trace] = (b + sign * weight, bv + var_sign * vb)
            if self._journal is not None:
                self._journal.append((trace, sign * weight, var_sign * vb))
                if len(self._journal) > max(64, 2 * len(self._b_by_trace)):
                    self._peak_by_trace = self._undo(self._journal)
                    self._journal = None
        if self._a > self._a_peak:
            self._a_peak = self._a
            self.peak, self.peak_var = self._b, max(self._bvar, 0.0)
            self.peak_us = t if t is not None else self.peak_us
            self._journal, self._peak_by_trace = [], None

    def _undo(self, journal):
        at_peak = dict(self._b_by_trace)
        for trace, db, dv in journal:
            b, bv = at_peak[trace]
            at_peak[trace] = (b - db, bv - dv)
        return at_peak

    def leaked(self):
        """(bytes, variance, {trace: bytes}) allocated in the window and live at its end."""
        total = var = 0.0
        per_trace = {}
        for (trace, size), n in self.net.items():
            if n > 0:
                w, v = self.sampler.weights(size)
                total += n * w
                var += n * v
                per_trace[trace] = per_trace.get(trace, 0.0) + n * w
        return total, var, per_trace

    def peak_by_trace(self):
        """{trace: (bytes, variance)}: B's estimate of each trace's growth at the peak, for the
        traces that grew."""
        at_peak = self._peak_by_trace if self._journal is None else self._undo(self._journal)
        return {trace: (b, max(bv, 0.0)) for trace, (b, bv) in at_peak.items() if b > 0}

    def top_peak_trace(self):
        """(trace, bytes) that grew most up to the peak, or None."""
        at_peak = self.peak_by_trace()
        if not at_peak:
            return None
        trace = max(at_peak, key=lambda k: at_peak[k][0])
        return trace, at_peak[trace][0]


def interval95(value, variance):
    """(low, high) of the normal-approximation 95% interval, low clamped at 0; (value, value)
    when the estimate is exact. Not the hp-* readers' gamma interval (hp-estimates(7)): its low
    end is below theirs for an estimate from few draws, so a limit checked against it errs
    towards passing (doc/python.md)."""
    h = Z95 * math.sqrt(variance) if variance > 0 else 0.0
    return max(0.0, value - h), value + h


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_DECIMALS = decimal.Context(prec=60)


def _printed(v, places):
    """v >= 0 rounded to `places` decimals as the hp-* commands print it (JavaScript's Math.round
    and toFixed: the nearest, a tie upwards, on the float's exact value), as a Decimal."""
    return decimal.Decimal(v).quantize(decimal.Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP, context=_DECIMALS)


def format_bytes(n):
    """'512 B', '1.5 KiB', '30.0 MiB', as lib/cli.ts formatBytes writes them: whole bytes rounded,
    not cut, and the largest unit whose value as printed stays below 1024 (1,048,565 bytes is
    1.0 MiB, not 1024.0 KiB)."""
    n = float(n)
    sign = "-" if n < 0 else ""
    u = 0
    v = abs(n)
    while u < len(_BYTE_UNITS) - 1 and _printed(v, 0 if u == 0 else 1) >= 1024:
        v /= 1024.0
        u += 1
    v = abs(n) / 1024.0 ** u
    return "%s%s %s" % (sign, _printed(v, 0 if u == 0 else 1), _BYTE_UNITS[u])


# Powers of 1024 whatever the spelling, as pytest-memray reads its limits ('24 MB' = 24 MiB).
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_size(text):
    """'24 MB', '24MiB', '512K', '1000' -> bytes (K, M, G are powers of 1024)."""
    s = str(text).strip().lower().replace(" ", "")
    i = len(s)
    while i and not (s[i - 1].isdigit() or s[i - 1] == "."):
        i -= 1
    number, unit = s[:i], s[i:]
    try:
        value = float(number)
    except ValueError:
        raise ValueError("expected a size such as '24 MB' or '512 KiB', got %r" % (text,))
    if unit not in _SIZE_UNITS or value < 0 or math.isinf(value):
        raise ValueError("expected a size such as '24 MB' or '512 KiB', got %r" % (text,))
    return value * _SIZE_UNITS[unit]
