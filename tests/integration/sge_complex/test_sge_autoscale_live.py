"""Integration tests: segway.cluster.sge_autoscale against a real sge_qmaster and sge_execd.

The cell of conftest.py (this host, `vm` in the recordings, is qmaster and the one exec
host) gets the tests' queue and Segway's mem_requested consumable, 2G on this host.
Jobs are submitted for real as the unprivileged test user, each needing more memory than
this host offers (3G) or than any instance type (64G), or held; none can start, so the
pending list stays as submitted and nothing runs. The module then runs for real through
`ansible-playbook -c local` with Debian's Python, and its plan is checked against what
was submitted. Every job is deleted again, and `clean` removes the queue, the host value
and the complex, so the cell is left as it was found. Run as root; see conftest.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULE = "segway.cluster.sge_autoscale"
# Instance types: `small` offers 1.5G of mem_requested (2048 MiB minus the 512M reserve),
# `big` 7.5G. A 3G job fits `big` only; a 64G job fits neither.
SMALL = {"vcpus": 2, "memory_mib": 2048}
BIG = {"vcpus": 2, "memory_mib": 8192}


def run_autoscale(sge, args: dict, *, check: bool = False, diff: bool = False) -> dict:
    return sge.run_module(args, check=check, diff=diff, module=MODULE)


class Jobs:
    """Jobs the test user submits; deleted again at the end of the test."""

    def __init__(self, sge) -> None:
        self.sge = sge
        self.ids: list[str] = []

    def submit(self, name: str, *options: str) -> str:
        out = self.sge.as_user(
            "qsub", "-terse", "-b", "y", "-o", "/dev/null", "-e", "/dev/null",
            "-q", self.sge.queue, "-N", name, *options, "/bin/sleep", "600",
        )  # fmt: skip
        job_id = out.strip().split(".", maxsplit=1)[0]
        self.ids.append(job_id)
        return job_id

    def delete(self) -> None:
        if not self.ids:
            return
        self.sge.qdel(*self.ids)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = self.sge.as_user("qstat", "-u", self.sge.user).split()
            if not set(self.ids) & set(listed):
                return
            time.sleep(0.5)
        raise AssertionError(f"jobs {self.ids} still listed after qdel")


@pytest.fixture
def cell(clean) -> Iterator[tuple[object, Jobs]]:
    """The tests' queue on this host, mem_requested=2G here, this host a submit host."""
    clean.add_complex("mem_requested mr MEMORY <= YES YES 0 10")
    clean.set_host_value(clean.host, "mem_requested", "2G")
    clean.add_queue(clean.queue, "NONE")
    added_submit = clean.host not in clean.qconf("-ss", check=False).split()
    if added_submit:
        clean.qconf("-as", clean.host)
    jobs = Jobs(clean)
    try:
        yield clean, jobs
    finally:
        jobs.delete()
        if added_submit:
            clean.qconf("-ds", clean.host)
        # `clean` then removes the queue, the host value and the complex.


@pytest.fixture
def pending(cell) -> tuple[object, dict[str, str]]:
    sge, jobs = cell
    ids = {
        "needs_big": jobs.submit("needs_3G", "-l", "mem_requested=3G"),
        "too_big": jobs.submit("too_big_64G", "-l", "mem_requested=64G"),
        "held": jobs.submit("held_1G", "-h", "-l", "mem_requested=1G"),
    }
    return sge, ids


def paths(sge, name: str) -> dict[str, str]:
    base = sge.tmp / name
    return {"state_path": str(base / "state.json"), "log_path": str(base / "autoscale.log")}


def test_check_mode_plans_a_big_node_and_writes_nothing(pending):
    sge, ids = pending
    files = paths(sge, "check")
    args = {"instance_types": {"small": SMALL, "big": BIG}, **files}

    result = run_autoscale(sge, args, check=True, diff=True)

    assert result["changed"] is False
    assert not Path(files["state_path"]).parent.exists()
    plan = result["plan"]
    assert plan["actions"] == [{"action": "launch", "count": 1, "instance_type": "big"}]
    assert [item["job"] for item in plan["placements"]] == [ids["needs_big"]]
    assert [item["job"] for item in plan["unplaceable"]] == [ids["too_big"]]
    assert [(job["job"], job["state"]) for job in result["pending"]["skipped"]] == [
        (ids["held"], "hqw")
    ]
    assert result["pending"]["jobs"] == 2
    assert result["pending"]["memory"] == (3 + 64) * 1024**3
    # This host is the qmaster: fixed, never drained; its 2G are free.
    assert result["hosts"]["fixed"] == [sge.host]
    assert plan["counts"]["free_memory"] == 2 * 1024**3
    assert result["summary"].endswith("actions: launch 1 x big")
    assert result["diff"]["before"] == ""
    assert json.loads(result["diff"]["after"]) == result["state"]


def test_job_bigger_than_every_type_launches_nothing(pending):
    sge, ids = pending
    args = {"instance_types": {"small": SMALL}, **paths(sge, "small")}

    result = run_autoscale(sge, args, check=True)

    assert result["plan"]["actions"] == []
    assert sorted(item["job"] for item in result["plan"]["unplaceable"]) == sorted(
        [ids["needs_big"], ids["too_big"]]
    )


def test_second_pass_keeps_idle_since_and_logs_each_pass(pending):
    sge, ids = pending
    files = paths(sge, "passes")
    args = {"instance_types": {"big": BIG}, "policy": {"max_nodes": 4}, **files}

    before = time.time()
    first = run_autoscale(sge, args)
    time.sleep(1.1)
    second = run_autoscale(sge, args, diff=True)

    assert first["changed"] is True and second["changed"] is True
    idle_since = first["state"]["idle_since"]
    assert list(idle_since) == [sge.host]  # no job runs here: idle from the first pass
    assert before <= idle_since[sge.host] <= first["plan"]["now"]
    assert second["state"]["idle_since"] == idle_since
    assert second["plan"]["now"] > first["plan"]["now"]
    state = json.loads(Path(files["state_path"]).read_text())
    assert state == second["state"]
    assert json.loads(second["diff"]["before"]) == first["state"]

    lines = [json.loads(line) for line in Path(files["log_path"]).read_text().splitlines()]
    assert lines == [first["log_record"], second["log_record"]]
    for line in lines:
        assert line["pending_jobs"] == 2
        assert line["pending_memory"] == (3 + 64) * 1024**3
        assert line["free_memory"] == 2 * 1024**3
        assert line["actions"] == [{"action": "launch", "count": 1, "instance_type": "big"}]
        assert line["unplaceable"] == 1
    # The held job (1G) is in neither the count nor the memory above: it was skipped.
    assert [job["job"] for job in second["pending"]["skipped"]] == [ids["held"]]
