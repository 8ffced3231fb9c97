"""numpy arrays allocated and freed in a loop (C allocations, issue 13): temporaries of a few
sizes from 8 KB to 8 MB, elementwise arithmetic, a reduction, a small surviving set."""
import numpy

from _timing import run


def work(scale):
    keep = []
    total = 0.0
    for i in range(int(3000 * scale)):
        n = 1000 << (i % 11)  # 8 KB .. 8 MB of float64
        a = numpy.ones(n)
        b = a * 2.0 + 1.0
        total += float(b[:10].sum())
        if i % 50 == 0:
            keep.append(b[: n // 8].copy())
        del a, b
    return total, len(keep)


run(work)
