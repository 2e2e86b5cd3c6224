"""Rebuild yoochoose-excerpt-{train,test}.txt: `.venv/bin/python tests/data/build_yoochoose_excerpt.py`.

Real YooChoose-100k sessions, unchanged: every session whose id is divisible
by 8, from train_full and from test. Small enough to train on in a test.
"""
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = Path("../shared/data/yoochoose-100k")

if __name__ == "__main__":
    for part, name in (("train_full", "train"), ("test", "test")):
        lines = (SOURCE / f"yoochoose-clicks-100k_{part}.txt").read_text().splitlines(keepends=True)
        kept = [lines[0]] + [line for line in lines[1:] if int(line.split("\t")[0]) % 8 == 0]
        (HERE / f"yoochoose-excerpt-{name}.txt").write_text("".join(kept))
        print(name, len(kept) - 1, "clicks")
