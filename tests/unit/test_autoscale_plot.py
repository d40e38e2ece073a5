"""playbooks/files/autoscale_plot.py: the PNG status.yml -e plot= renders from the
autoscaler's monitor log."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "playbooks" / "files" / "autoscale_plot.py"
NOW = 1_796_000_000.0


def record(minute: int, busy: int, idle: int, pending: int, actions: list) -> str:
    """A pass as sge_autoscale's log_record writes it."""
    return json.dumps(
        {
            "time": "ignored",
            "now": NOW + 60 * minute,
            "pending_jobs": pending,
            "pending_slots": pending,
            "pending_memory": pending * 1536 * 2**20,
            "free_slots": idle * 2,
            "free_memory": idle * 2 * 2**30,
            "slots_total": (busy + idle) * 2,
            "slots_used": busy * 2,
            "nodes": {"listed": busy + idle + 1, "busy": busy, "idle": idle, "fixed": 1,
                      "draining": 0, "excluded": 0, "in_flight": 0,
                      "new": sum(a.get("count", 0) for a in actions)},
            "waiting": 0,
            "unplaceable": 1 if pending else 0,
            "actions": actions,
            "summary": "...",
        }
    )  # fmt: skip


def plot(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "segway-autoscale.log"
    log.write_text("\n".join(lines) + "\n")
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(log), str(tmp_path / "passes.png")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plot_of_a_scale_up_and_down(tmp_path: Path) -> None:
    lines = [
        record(0, 1, 0, 6, [{"action": "launch", "count": 2, "instance_type": "local"}]),
        record(1, 3, 0, 1, []),
        '{"now": 1796000130, "nod',  # a line cut short while being written: skipped
        record(3, 1, 2, 0, [{"action": "drain", "host": "node003"}]),
        record(4, 1, 1, 0, [{"action": "remove", "host": "node003"}]),
    ]
    done = plot(tmp_path, lines)
    assert done.returncode == 0, done.stderr
    assert "4 passes" in done.stdout and "at most 3 compute nodes" in done.stdout, done.stdout
    assert "at most 6 pending jobs" in done.stdout, done.stdout
    png = (tmp_path / "passes.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1000, 1100)  # 10 x 11 inches at 100 dpi


def test_a_log_without_passes_is_refused(tmp_path: Path) -> None:
    done = plot(tmp_path, ["not json", ""])
    assert done.returncode == 2
    assert "holds no autoscaler pass: run playbooks/balance.yml first" in done.stderr
    assert not (tmp_path / "passes.png").exists()
