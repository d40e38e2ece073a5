"""Integration tests: segway.cluster.sge_object's `objects` list against a real sge_qmaster.

roles/sge configures its host group, parallel environments, queue, scheduler and global
configuration in one module run. These check, with qconf's own output, that one run
creates what several single-object runs would, changes nothing the second time, writes
nothing in check mode, and writes nothing at all when a later object is bad.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Sge

GROUP = "@zz_it_group"
PE = "zz_it_pe"
QUEUE = "zz_it_obj.q"
MODULE = "segway.cluster.sge_object"


def objects(sge: Sge, slots: str = "4", interval: str | None = None) -> list[dict]:
    """A host group, a PE and a queue naming both, as roles/sge orders them."""
    found = [
        {"kind": "hostgroup", "name": GROUP, "attributes": {"hostlist": [sge.host]}},
        {"kind": "pe", "name": PE, "attributes": {"slots": 16, "allocation_rule": "$pe_slots"}},
        {
            "kind": "queue",
            "name": QUEUE,
            "attributes": {"hostlist": GROUP, "pe_list": [PE], "slots": f"1,[{sge.host}={slots}]"},
        },
    ]
    if interval:
        found.append({"kind": "scheduler", "attributes": {"schedule_interval": interval}})
    return found


def remove_objects(sge: Sge) -> None:
    if QUEUE in sge.qconf("-sql", check=False).split():
        sge.qconf("-dq", QUEUE)
    if PE in sge.qconf("-spl", check=False).split():
        sge.qconf("-dp", PE)
    if GROUP in sge.qconf("-shgrpl", check=False).split():
        sge.qconf("-dhgrp", GROUP)


@pytest.fixture
def cell(sge: Sge) -> Iterator[Sge]:
    """A cell without the test's objects, with its scheduler interval put back after."""
    remove_objects(sge)
    interval = sge.config("-ssconf")["schedule_interval"]
    yield sge
    remove_objects(sge)
    sge.run_module(
        {"kind": "scheduler", "attributes": {"schedule_interval": interval}}, module=MODULE
    )


def test_one_run_creates_every_object_then_changes_nothing(cell: Sge) -> None:
    interval = cell.config("-ssconf")["schedule_interval"]
    wanted = "0:0:7" if interval != "0:0:7" else "0:0:9"
    first = cell.run_module({"objects": objects(cell, interval=wanted)}, module=MODULE, diff=True)

    assert first["changed"] is True
    assert [(r["kind"], r["created"], r["changed"]) for r in first["results"]] == [
        ("hostgroup", True, True),
        ("pe", True, True),
        ("queue", True, True),
        ("scheduler", False, True),
    ]
    assert first["results"][3]["changed_attributes"] == ["schedule_interval"]
    assert cell.config("-shgrp", GROUP)["hostlist"] == cell.host
    assert cell.config("-sp", PE)["allocation_rule"] == "$pe_slots"
    queue = cell.config("-sq", QUEUE)
    assert (queue["hostlist"], queue["pe_list"]) == (GROUP, PE)
    assert queue["slots"].replace(" ", "") == f"1,[{cell.host}=4]"
    assert cell.config("-ssconf")["schedule_interval"] == wanted
    # One diff per object, each under its own header.
    assert [d["after_header"] for d in first["diff"]] == [
        f"hostgroup {GROUP} (after)",
        f"pe {PE} (after)",
        f"queue {QUEUE} (after)",
        "scheduler (after)",
    ]

    second = cell.run_module({"objects": objects(cell, interval=wanted)}, module=MODULE)
    assert second["changed"] is False
    assert [r["changed"] for r in second["results"]] == [False] * 4


def test_check_mode_reports_and_writes_nothing(cell: Sge) -> None:
    cell.run_module({"objects": objects(cell)}, module=MODULE)
    before = cell.qconf("-sq", QUEUE)

    result = cell.run_module({"objects": objects(cell, slots="2")}, module=MODULE, check=True)

    assert result["changed"] is True
    assert [r["changed_attributes"] for r in result["results"]] == [[], [], ["slots"]]
    assert cell.qconf("-sq", QUEUE) == before


def test_a_bad_later_object_stops_the_run_before_any_write(cell: Sge) -> None:
    bad = [*objects(cell), {"kind": "pe", "name": "zz_it_other_pe", "attributes": {"nope": 1}}]

    result = cell.run_module({"objects": bad}, module=MODULE, fails=True)

    assert result["msg"].startswith("objects[3]: attributes ['nope'] are not attributes of a pe")
    # Objects 0-2 were fine, and none of them was written.
    assert GROUP not in cell.qconf("-shgrpl", check=False).split()
    assert PE not in cell.qconf("-spl", check=False).split()
    assert QUEUE not in cell.qconf("-sql", check=False).split()


def test_objects_and_kind_together_are_refused(cell: Sge) -> None:
    result = cell.run_module(
        {"kind": "pe", "name": PE, "objects": objects(cell)}, module=MODULE, fails=True
    )
    assert "mutually exclusive" in result["msg"] and "objects" in result["msg"], result["msg"]
    assert PE not in cell.qconf("-spl", check=False).split()


def test_absent_in_the_list_deletes_in_order(cell: Sge) -> None:
    cell.run_module({"objects": objects(cell)}, module=MODULE)
    gone = [
        {"kind": "queue", "name": QUEUE, "state": "absent"},
        {"kind": "pe", "name": PE, "state": "absent"},
        {"kind": "hostgroup", "name": GROUP, "state": "absent"},
    ]

    result = cell.run_module({"objects": gone}, module=MODULE)

    assert [r["changed"] for r in result["results"]] == [True, True, True]
    assert QUEUE not in cell.qconf("-sql", check=False).split()
    assert PE not in cell.qconf("-spl", check=False).split()
    assert GROUP not in cell.qconf("-shgrpl", check=False).split()
    assert cell.run_module({"objects": gone}, module=MODULE)["changed"] is False
