"""heapprof demo and known-truth workload.

Holds ~30 MB in 100 KB buffers, adds a 50 MB spike and frees it, then holds ~15 MB of
small strings, sleeping between phases so that time buckets show each one. With a path
argument it writes what it allocated (exact sizes from sys.getsizeof) and when each phase
was complete (wall clock), which the end-to-end accuracy test compares with what the
hp-* tools estimate.
"""

import json
import os
import re
import sys
import time

BUFFER = 100_000
PAUSE = float(os.environ.get("SPIKE_PAUSE", "1.0"))


def phase_buffers():
    return [bytes(BUFFER) for _ in range(300)]  # SITE buffers


def phase_spike():
    return [bytes(BUFFER) for _ in range(500)]  # SITE spike


def phase_strings(n):
    strings = [None] * n
    for i in range(n):
        strings[i] = "%070d" % i  # SITE strings
    return strings


def main():
    truth = {"phases": {}}

    def mark(name, objects):
        truth["phases"][name] = {
            "time": time.time(),
            "bytes": sum(sys.getsizeof(o) for o in objects),
            "count": len(objects),
        }

    buffers = phase_buffers()
    mark("buffers", buffers)
    time.sleep(PAUSE)

    spike = phase_spike()
    mark("spike", spike)
    time.sleep(PAUSE)
    del spike
    mark("after_spike", [])
    time.sleep(PAUSE)

    strings = phase_strings(150_000)
    mark("strings", strings)
    time.sleep(PAUSE)

    # Source lines of the allocation sites, so the test need not hard-code them.
    with open(__file__) as f:
        for number, text in enumerate(f, 1):
            site = re.search(r"#\s*SITE (\w+)$", text.rstrip())
            if site:
                truth.setdefault("sites", {})[site.group(1)] = number
    truth["held_at_end"] = len(buffers) + len(strings)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump(truth, f, indent=1)


if __name__ == "__main__":
    main()
