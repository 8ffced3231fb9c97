"""Shared by the benchmark workloads: run the work, report its own wall and CPU time (all
threads) as JSON on stdout.

Timing inside the process leaves out interpreter and launcher start-up, which are the same
for every configuration and would only blur the ratios.
"""
import json
import sys
import time


def run(work):
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    work(scale)
    cpu = time.process_time() - c0
    elapsed = time.perf_counter() - t0
    sys.stdout.write(json.dumps({"work_s": elapsed, "work_cpu_s": cpu}) + "\n")
