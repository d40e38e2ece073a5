"""playbooks/files/segway_demo_data.py: the Segway demo's synthetic data and the check of
the segmentation Segway makes from it (make segway-demo)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "playbooks" / "files" / "segway_demo_data.py"
LENGTHS = {"chr1": 200_000, "chr2": 100_000}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    assert run(str(out)).returncode == 0
    return out


def write_bed(path: Path, rows: list[tuple[str, int, int, str]]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write('track name=segway description="segway"\n')
        handle.writelines(f"{c}\t{s}\t{e}\t{n}\t1000\t.\t{s}\t{e}\t0,0,0\n" for c, s, e, n in rows)
    return path


def truth(out: Path) -> list[tuple[str, int, int, str]]:
    return [
        (c, int(s), int(e), n)
        for c, s, e, n in (
            line.split("\t") for line in out.joinpath("truth.bed").read_text().split("\n") if line
        )
    ]


def test_data_covers_both_chromosomes_in_100_bp_bins(tmp_path: Path) -> None:
    out = make(tmp_path)
    fasta = out.joinpath("genome.fa").read_text().split("\n")
    sequences: dict[str, int] = {}
    for line in fasta:
        if line.startswith(">"):
            name = line[1:]
            sequences[name] = 0
        elif line:
            assert set(line) <= set("ACGT")
            sequences[name] += len(line)
    assert sequences == LENGTHS
    for track in ("h3k4me3", "h3k27me3"):
        lines = out.joinpath(f"{track}.bedGraph").read_text().splitlines()
        assert lines[0] == f"track type=bedGraph name={track}"
        rows = [line.split("\t") for line in lines[1:]]
        assert len(rows) == sum(LENGTHS.values()) // 100
        assert all(int(e) - int(s) == 100 and float(v) >= 0 for _chrom, s, e, v in rows)
    states = truth(out)
    assert {state[-1] for state in states} == {"active", "repressed", "quiet"}
    assert sum(e - s for _chrom, s, e, _name in states) == sum(LENGTHS.values())


def test_the_same_seed_makes_the_same_data(tmp_path: Path) -> None:
    first, second = make(tmp_path / "a"), make(tmp_path / "b")
    assert (
        first.joinpath("h3k4me3.bedGraph").read_bytes()
        == second.joinpath("h3k4me3.bedGraph").read_bytes()
    )
    assert first.joinpath("truth.bed").read_bytes() == second.joinpath("truth.bed").read_bytes()


def test_check_passes_a_segmentation_and_measures_its_agreement(tmp_path: Path) -> None:
    out = make(tmp_path)
    labels = {"active": "0", "repressed": "1", "quiet": "2"}
    perfect = write_bed(
        tmp_path / "perfect.bed.gz", [(c, s, e, labels[n]) for c, s, e, n in truth(out)]
    )
    done = run("check", str(out / "truth.bed"), str(perfect))
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    assert report["agreement"] == 1.0
    assert report["label_states"] == {label: state for state, label in labels.items()}
    assert report["covered"] == LENGTHS
    # Two labels where the truth has three: still a segmentation, agreement below 1.
    merged = write_bed(
        tmp_path / "merged.bed.gz",
        [(c, s, e, "0" if n == "active" else "1") for c, s, e, n in truth(out)],
    )
    report = json.loads(run("check", str(out / "truth.bed"), str(merged)).stdout)
    assert report["problems"] == [] and report["labels"] == ["0", "1"]
    assert 0.3 < report["agreement"] < 1.0


def test_check_fails_a_gap_a_missing_chromosome_and_a_single_label(tmp_path: Path) -> None:
    out = make(tmp_path)
    gap = write_bed(
        tmp_path / "gap.bed.gz",
        [("chr1", 0, 1000, "0"), ("chr1", 1100, 200_000, "1"), ("chr2", 0, 100_000, "0")],
    )
    done = run("check", str(out / "truth.bed"), str(gap))
    assert done.returncode == 1
    assert json.loads(done.stdout)["problems"] == ["chr1: gap at 1000"]
    lost = write_bed(tmp_path / "lost.bed.gz", [("chr1", 0, 200_000, "0")])
    problems = json.loads(run("check", str(out / "truth.bed"), str(lost)).stdout)["problems"]
    assert problems == ["chr2: no segment", "only 1 label(s): ['0']"]
    short = write_bed(
        tmp_path / "short.bed.gz", [("chr1", 0, 150_000, "0"), ("chr2", 0, 100_000, "1")]
    )
    assert json.loads(run("check", str(out / "truth.bed"), str(short)).stdout)["problems"] == [
        "chr1: segments end at 150000, not 200000"
    ]


def test_usage_without_arguments(tmp_path: Path) -> None:
    done = run()
    assert done.returncode == 2
    assert "Usage" in done.stderr
