#!/usr/bin/env python3
"""Writes OUT (default words_50MB.txt): ~MB * 10^6 bytes of lines of 10..20 words drawn from a
50,000-word vocabulary with Zipf weights (1/rank). Pure Python (no numpy), seeded: the same
file every time. Used by benchmarks/run_compose.sh (BENCHMARKS.md run 10).

    python3 benchmarks/gen_words.py [OUT] [MB]
"""
import itertools
import random
import sys

out_path = sys.argv[1] if len(sys.argv) > 1 else "words_50MB.txt"
mb = int(sys.argv[2]) if len(sys.argv) > 2 else 50
random.seed(7)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = []
for i in range(50000):
    n = 2 + int(random.random() ** 2 * 10) + (i.bit_length() // 4)
    vocab.append("".join(random.choice(letters) for _ in range(n)))
cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(vocab))))
size = 0
with open(out_path, "w") as out:
    while size < mb * 1_000_000:
        line = " ".join(random.choices(vocab, cum_weights=cum, k=random.randint(10, 20))) + "\n"
        out.write(line)
        size += len(line)
