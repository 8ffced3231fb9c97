"""A spike: build a large temporary structure, drop it, repeat; a small steady background."""
from _timing import run


def work(scale):
    background = []
    for rep in range(2):
        big = [bytes(200 + (i % 300)) for i in range(int(80_000 * scale))]
        table = {i: str(i) * 3 for i in range(int(40_000 * scale))}
        background.append(len(big) + len(table))
        del big, table
    return background


run(work)
