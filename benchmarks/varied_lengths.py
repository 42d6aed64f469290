"""A "longer-text upload" for the sorted-against-unsorted batching example (seed 004): texts of very different
lengths, built deterministically from the bundled samples, written as a CSV with one ``text`` column.

    python benchmarks/varied_lengths.py [--out benchmarks/data/varied_lengths.csv] [--rows 192]

Each text is 1 to 6 consecutive sentences of one paragraph of ``data/samples/causal_lm.txt`` (about 15 to 120
MiniLM tokens), or a short sentence of ``data/samples/embedding_sentences.csv``; rows are shuffled with a fixed
seed, so in data order a batch mixes short and long texts the way real uploads do.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"


def varied_texts(rows: int = 192, seed: int = 4) -> list[str]:
    paragraphs = [p.strip() for p in (SAMPLES / "causal_lm.txt").read_text(encoding="utf-8").split("\n\n") if p.strip()]
    sentences = [re.split(r"(?<=[.!?])\s+", p) for p in paragraphs]
    with open(SAMPLES / "embedding_sentences.csv", newline="", encoding="utf-8") as f:
        short = [row["text"] for row in csv.DictReader(f) if row.get("text")]
    rng = random.Random(seed)
    out = []
    while len(out) < rows:
        if rng.random() < 0.35:
            out.append(rng.choice(short))
            continue
        parts = rng.choice(sentences)
        start = rng.randrange(len(parts))
        out.append(" ".join(parts[start:start + rng.randint(1, 6)]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "varied_lengths.csv"))
    parser.add_argument("--rows", type=int, default=192)
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t] for t in varied_texts(args.rows))
    print(f"wrote {args.rows} texts to {out}")


if __name__ == "__main__":
    main()
