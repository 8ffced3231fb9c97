"""Steady growth: a cache that only ever grows (records, byte buffers of mixed sizes)."""
from _timing import run


def work(scale):
    cache = {}
    n = int(120_000 * scale)
    for i in range(n):
        cache[i] = ("row-%d" % i, [i] * (i % 8), bytearray(32 + (i % 600)))
    return len(cache)


run(work)
