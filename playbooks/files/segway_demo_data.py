"""Make the Segway demo's synthetic data: a genome, two signal tracks and their truth.

Usage: python3 segway_demo_data.py OUTDIR [SEED]

Writes into OUTDIR:
  genome.fa            two chromosomes (chr1 200 kb, chr2 100 kb) of random sequence
  h3k4me3.bedGraph     a signal track in 100 bp bins
  h3k27me3.bedGraph    a second signal track in 100 bp bins
  truth.bed            the hidden state each block was drawn from (active, repressed, quiet)

The two tracks come from three hidden states laid out in blocks of 1-10 kb: "active" is
high in the first track and low in the second, "repressed" the reverse, "quiet" low in
both. A segmentation that works puts most of each state under one label, which
`segway_demo_data.py check` measures. Standard library only, so the demo needs nothing
the cluster's Segway environment does not have.

Usage: python3 segway_demo_data.py check TRUTH_BED SEGWAY_BED
  prints one JSON line: the segmentation's labels, bases covered per chromosome, the state
  each label covers most, and the fraction of bases whose label stands for their true
  state (more labels than states can still reach 1, fewer cannot); exits 1
  when the BED is not a segmentation of the genome (missing chromosome, gaps, overlaps,
  fewer than two labels).
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

CHROMOSOMES = {"chr1": 200_000, "chr2": 100_000}
BIN = 100
BLOCK_MIN, BLOCK_MAX = 1_000, 10_000
# Mean signal of each state in (first track, second track).
STATES = {"active": (8.0, 0.5), "repressed": (0.5, 6.0), "quiet": (0.5, 0.5)}
TRACKS = ("h3k4me3", "h3k27me3")
LINE = 60
MIN_LABELS = 2
DEFAULT_SEED = 17


def blocks(rng: random.Random, length: int) -> list[tuple[int, int, str]]:
    """Lay the chromosome out in blocks of whole bins, each in one hidden state."""
    out: list[tuple[int, int, str]] = []
    start = 0
    names = list(STATES)
    previous = None
    while start < length:
        size = rng.randrange(BLOCK_MIN // BIN, BLOCK_MAX // BIN + 1) * BIN
        end = min(length, start + size)
        state = rng.choice([name for name in names if name != previous])
        out.append((start, end, state))
        previous = state
        start = end
    return out


def make(outdir: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 (repeatable test data, not a secret)
    outdir.mkdir(parents=True, exist_ok=True)
    with (outdir / "genome.fa").open("w") as fasta:
        for chrom, length in CHROMOSOMES.items():
            fasta.write(f">{chrom}\n")
            seq = "".join(rng.choice("ACGT") for _position in range(length))
            fasta.writelines(seq[i : i + LINE] + "\n" for i in range(0, length, LINE))
    tracks = {name: (outdir / f"{name}.bedGraph").open("w") for name in TRACKS}
    with (outdir / "truth.bed").open("w") as truth:
        for name in TRACKS:
            tracks[name].write(f"track type=bedGraph name={name}\n")
        for chrom, length in CHROMOSOMES.items():
            for start, end, state in blocks(rng, length):
                truth.write(f"{chrom}\t{start}\t{end}\t{state}\n")
                for pos in range(start, end, BIN):
                    for index, name in enumerate(TRACKS):
                        mean = STATES[state][index]
                        value = max(0.0, rng.gauss(mean, 0.25 * mean + 0.3))
                        tracks[name].write(f"{chrom}\t{pos}\t{pos + BIN}\t{value:.3f}\n")
    for handle in tracks.values():
        handle.close()


def read_bed(path: Path) -> list[tuple[str, int, int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith(("track", "browser", "#")) or not line.strip():
                continue
            chrom, start, end, name = line.split("\t")[:4]
            rows.append((chrom, int(start), int(end), name.strip()))
    return rows


def check(truth_path: Path, bed_path: Path) -> int:
    segments = read_bed(bed_path)
    problems = []
    covered: dict[str, int] = {}
    by_chrom: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for chrom, start, end, label in segments:
        by_chrom[chrom].append((start, end, label))
    for chrom, length in CHROMOSOMES.items():
        rows = sorted(by_chrom.get(chrom, []))
        if not rows:
            problems.append(f"{chrom}: no segment")
            continue
        position = 0
        for start, end, _label in rows:
            if start != position:
                problems.append(
                    f"{chrom}: {'gap' if start > position else 'overlap'} at {position}"
                )
            position = end
        if position != length:
            problems.append(f"{chrom}: segments end at {position}, not {length}")
        covered[chrom] = sum(end - start for start, end, _label in rows)
    labels = sorted({segment[-1] for segment in segments})
    if len(labels) < MIN_LABELS:
        problems.append(f"only {len(labels)} label(s): {labels}")
    # Bases of each label in each true state; each label stands for the state it covers
    # most, and the agreement is the share of bases whose label stands for their state.
    overlap: dict[str, Counter] = defaultdict(Counter)
    for chrom, start, end, state in read_bed(truth_path):
        for seg_start, seg_end, label in by_chrom.get(chrom, []):
            shared = min(end, seg_end) - max(start, seg_start)
            if shared > 0:
                overlap[label][state] += shared
    agreeing = sum(max(counts.values()) for counts in overlap.values() if counts)
    total = sum(CHROMOSOMES.values())
    report = {
        "labels": labels,
        "segments": len(segments),
        "covered": covered,
        "label_states": {
            label: counts.most_common(1)[0][0] for label, counts in overlap.items() if counts
        },
        "agreement": round(agreeing / total, 3),
        "problems": problems,
    }
    print(json.dumps(report, sort_keys=True))
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    match argv[1:]:
        case ["check", truth_bed, segway_bed]:
            return check(Path(truth_bed), Path(segway_bed))
        case [outdir] if outdir != "check":
            make(Path(outdir), DEFAULT_SEED)
            return 0
        case [outdir, seed] if outdir != "check":
            make(Path(outdir), int(seed))
            return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
