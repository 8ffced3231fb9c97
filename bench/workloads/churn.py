"""Allocation-heavy churn of small objects: tuples, dicts, lists, strings and ints made and
dropped at a high rate, with a ring of recent objects kept alive so frees lag allocations."""
from _timing import run


def work(scale):
    ring = [None] * 4096
    n = int(600_000 * scale)
    for i in range(n):
        key = "k%d" % (i & 1023)
        obj = {"id": i, "key": key, "vals": [i, i + 1, i + 2], "pair": (key, i)}
        if i % 7 == 0:
            obj["blob"] = b"x" * (64 + (i & 255))
        ring[i & 4095] = obj


run(work)
