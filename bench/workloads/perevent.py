"""What one sampled event costs (bench/perevent.js): a loop allocating one 183-byte bytes
object and freeing it at once, under a seven-frame stack. Recorded with the 128..255 range
sampled at 1 and again at 0, the two runs differ only by the sampled events: an allocation
and its free per iteration. Prints its timing line (see _timing.py) with the iteration count."""
import json
import sys
import time

N = int(float(sys.argv[1]) * 1_000_000) if len(sys.argv) > 1 else 1_000_000


def f7(n):
    b = bytes
    for _ in range(n):
        b(150)


def f6(n):
    f7(n)


def f5(n):
    f6(n)


def f4(n):
    f5(n)


def f3(n):
    f4(n)


def f2(n):
    f3(n)


c0 = time.process_time()
t0 = time.perf_counter()
f2(N)
sys.stdout.write(json.dumps({"work_s": time.perf_counter() - t0, "work_cpu_s": time.process_time() - c0, "n": N}) + "\n")
