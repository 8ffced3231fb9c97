"""Sampling configurations: the size-range table (heapprof's {128: 1e-4, 8192: 0.1}) and
byte-Poisson. Specs given as text are parsed strictly by a small grammar, never evaluated."""

import math

DEFAULT_TABLE = {128: 1e-4, 8192: 0.1}
MAX_RANGES = 64


class SamplingError(ValueError):
    """A sampling spec that is not valid; the message says what and where."""


_TOKEN_PATTERN = r"""\s*(?:
        (?P<punct>[{}:,])
      | (?P<key>["']?[0-9][0-9_]*["']?)(?=\s*:)
      | (?P<num>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)
    )"""
_BYTES_PATTERN = r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]i?[bB]?|[bB])?\s*$"
_compiled = {}


def _regex(pattern, verbose=False):
    # re (with enum, functools and collections behind it) costs a clean interpreter ~15 ms, and
    # hp-record imports this module before every program: only specs given as text need it.
    compiled = _compiled.get(pattern)
    if compiled is None:
        import re

        compiled = _compiled[pattern] = re.compile(pattern, re.VERBOSE if verbose else 0)
    return compiled


def _tokens(text):
    pos = 0
    out = []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return out
        m = _regex(_TOKEN_PATTERN, verbose=True).match(text, pos)
        if not m or m.end() == pos:
            raise SamplingError("unexpected %r at offset %d" % (text[pos:pos + 10], pos))
        kind = m.lastgroup
        out.append((kind, m.group(kind), pos))
        pos = m.end()


def parse_table(text):
    """Parses '{128: 1e-4, 8192: 0.1}' (keys may be quoted, as in JSON) into a dict
    {upper bound: probability}. Raises SamplingError."""
    toks = _tokens(text)
    if len(toks) < 2 or toks[0][1] != "{" or toks[-1][1] != "}":
        raise SamplingError("expected {SIZE: PROBABILITY, ...}, e.g. '{128: 1e-4, 8192: 0.1}'")
    body = toks[1:-1]
    table = {}
    i = 0
    while i < len(body):
        if i + 3 > len(body):
            raise SamplingError("incomplete entry at offset %d" % body[i][2])
        key, colon, value = body[i:i + 3]
        if key[0] != "key" or colon[1] != ":" or value[0] != "num":
            raise SamplingError("expected SIZE: PROBABILITY at offset %d" % key[2])
        raw = key[1]
        if raw[0] in "\"'" and (len(raw) < 2 or raw[-1] != raw[0]):
            raise SamplingError("unbalanced quote at offset %d" % key[2])
        bound = int(raw.strip("\"'"))
        prob = float(value[1])
        if bound <= 0:
            raise SamplingError("size bound must be positive at offset %d" % key[2])
        if bound in table:
            raise SamplingError("size %d given twice" % bound)
        if not (0.0 <= prob <= 1.0) or math.isnan(prob):
            raise SamplingError("probability %s for size %d is not in [0, 1]" % (value[1], bound))
        table[bound] = prob
        i += 3
        if i < len(body):
            if body[i][1] != ",":
                raise SamplingError("expected ',' at offset %d" % body[i][2])
            i += 1
    return check_table(table)


def check_table(table):
    """Validates a {bound: probability} dict; returns it sorted by bound."""
    if not isinstance(table, dict):
        raise SamplingError("sampling table must be a dict {size: probability}")
    if len(table) > MAX_RANGES:
        raise SamplingError("at most %d size ranges" % MAX_RANGES)
    # Keys are checked before sorting: sorted() of mixed types ({128: 0.1, 'a': 1}) raises TypeError.
    for bound in table:
        if isinstance(bound, bool) or not isinstance(bound, int) or bound <= 0 or bound >= 2 ** 63:
            raise SamplingError("size bound %r must be a positive integer" % (bound,))
    out = {}
    for bound in sorted(table):
        prob = table[bound]
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not (0.0 <= prob <= 1.0):
            raise SamplingError("probability %r for size %d is not in [0, 1]" % (prob, bound))
        out[bound] = float(prob)
    return out


def parse_bytes(text):
    """Parses a mean byte gap for byte-Poisson sampling: '524288', '512k', '2MiB'."""
    m = _regex(_BYTES_PATTERN).match(str(text))
    if not m:
        raise SamplingError("expected a byte count such as 524288 or 512k, got %r" % (text,))
    value = float(m.group(1))
    unit = (m.group(2) or "b")[0].lower()
    value *= {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
    return check_bytes(value)


def check_bytes(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0) or math.isinf(value):
        raise SamplingError("mean bytes between samples must be a positive number, got %r" % (value,))
    return float(value)
