"""Real standard-library work: json round trips, ast.parse + compile of stdlib sources, re."""
import ast
import json
import os
import re

from _timing import run

SOURCES = ["json/decoder.py", "json/encoder.py", "argparse.py", "textwrap.py", "string.py", "shlex.py"]


def work(scale):
    libdir = os.path.dirname(os.__file__)
    texts = []
    for rel in SOURCES:
        with open(os.path.join(libdir, rel), encoding="utf-8") as f:
            texts.append(f.read())
    reps = max(1, round(1 * scale))
    for _ in range(reps):
        for text in texts:
            tree = ast.parse(text)
            compile(tree, "<bench>", "exec")
    doc = {"items": [{"id": i, "name": "item %d" % i, "tags": ["a", "b", str(i)], "price": i * 1.5} for i in range(int(8_000 * scale))]}
    for _ in range(2):
        doc = json.loads(json.dumps(doc))
    word = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
    calls = 0
    for _ in range(reps):
        for text in texts:
            calls += sum(1 for _ in word.finditer(text))
    return calls


run(work)
