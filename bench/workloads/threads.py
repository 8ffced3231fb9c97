"""Many threads allocating at once (they contend for the GIL, as real servers do)."""
import threading

from _timing import run


def worker(n, out, k):
    keep = [None] * 512
    for i in range(n):
        keep[i & 511] = {"t": k, "i": i, "s": "x" * (i & 63), "l": [i, k]}
    out[k] = len(keep)


def work(scale):
    threads = []
    out = [0] * 16
    per = int(40_000 * scale)
    for k in range(16):
        th = threading.Thread(target=worker, args=(per, out, k))
        threads.append(th)
        th.start()
    for th in threads:
        th.join()


run(work)
