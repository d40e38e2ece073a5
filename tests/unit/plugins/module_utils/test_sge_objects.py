"""Parsing, comparing and rendering of qconf objects (plugins/module_utils/sge_objects.py).

Fixtures under tests/unit/fixtures/sge_objects/ are real output of Debian's gridengine
8.1.9 (`qconf -sq all.q`, `-shgrp`, `-sp`, `-ssconf`, `-sconf`) captured on the molecule
test cluster after a converge, including a host group long enough for qconf to wrap.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.segway.cluster.plugins.module_utils import sge_objects as so

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sge_objects"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_parse_queue_keeps_every_attribute_in_order():
    queue = so.parse_object(fixture("qconf_sq_all.q.txt"))
    assert list(queue)[:3] == ["qname", "hostlist", "seq_no"]
    assert queue["qname"] == "all.q"
    assert queue["slots"] == "1,[node001=2],[node002=2]"
    assert queue["pe_list"] == "mpi smp"
    assert queue["shell"] == "/bin/bash"
    # Every attribute of the 8.1.9 template is there, and nothing else.
    assert set(queue) == {key for key, _ in so.QUEUE_TEMPLATE}


def test_parse_joins_wrapped_word_lists_with_a_space():
    group = so.parse_object(fixture("qconf_shgrp_wrapped.txt"))
    hosts = group["hostlist"].split()
    assert hosts == [f"node0{i}" for i in range(10, 41)]


def test_parse_joins_wrapped_comma_lists_without_a_space():
    conf = so.parse_object(fixture("qconf_sconf_global.txt"))
    assert conf["qmaster_params"] == "ENABLE_FORCED_QDEL_IF_UNKNOWN,ENABLE_RESCHEDULE_KILL=1"
    assert "global" not in conf  # the "#global:" header is a comment
    assert conf["reporting_params"].startswith("accounting=true reporting=false flush_time=")


def test_parse_scheduler_and_pe():
    sconf = so.parse_object(fixture("qconf_ssconf.txt"))
    assert sconf["schedule_interval"] == "0:0:2"
    assert sconf["flush_submit_sec"] == "1"
    pe = so.parse_object(fixture("qconf_sp_mpi.txt"))
    assert pe["allocation_rule"] == "$fill_up"
    assert set(pe) == {key for key, _ in so.PE_TEMPLATE}


@pytest.mark.parametrize(
    ("key", "left", "right"),
    [
        ("pe_list", "smp mpi", "mpi smp"),
        ("hostlist", "node002 node001", "node001  node002"),
        ("slots", "1,[node002=2],[node001=4]", "1, [node001=4], [node002=2]"),
        ("seq_no", "0,[node002=2],[node001=1]", "0,[node001=1],[node002=2]"),
        ("rerun", "TRUE", "true"),
        ("complex_values", "NONE", "none"),
        ("qmaster_params", "A, B=1", "A,B=1"),
    ],
)
def test_values_equal_as_qconf_means_them(key, left, right):
    assert so.values_equal(key, left, right)


@pytest.mark.parametrize(
    ("key", "left", "right"),
    [
        ("shell", "/bin/bash", "/bin/sh"),
        ("slots", "1,[node001=2]", "1,[node001=4]"),
        ("seq_no", "0,[node001=1],[node002=2]", "0,[node001=2],[node002=1]"),
        ("hostlist", "node001", "node001 node002"),
        ("load_formula", "np_load_avg", "NP_LOAD_AVG"),
    ],
)
def test_values_differ(key, left, right):
    assert not so.values_equal(key, left, right)


def test_normalize_lists_and_bools():
    assert so.normalize("pe_list", ["smp", "mpi"]) == "mpi smp"
    assert so.normalize("pe_list", []) == "NONE"
    assert so.normalize("rerun", True) == "TRUE"
    assert so.normalize("slots", 4) == "4"


def test_no_differences_when_the_object_already_matches():
    queue = so.parse_object(fixture("qconf_sq_all.q.txt"))
    kind = so.KINDS["queue"]
    wanted = so.wanted_object(
        kind,
        "all.q",
        queue,
        {"pe_list": ["smp", "mpi"], "slots": "1,[node002=2],[node001=2]", "shell": "/bin/bash"},
    )
    assert so.differences(queue, wanted) == {}


def test_differences_name_only_what_changes():
    queue = so.parse_object(fixture("qconf_sq_all.q.txt"))
    wanted = so.wanted_object(so.KINDS["queue"], "all.q", queue, {"slots": "1,[node001=2]"})
    assert so.differences(queue, wanted) == {
        "slots": ("1,[node001=2],[node002=2]", "1,[node001=2]")
    }


def test_a_new_object_starts_from_the_template_without_stock_pes():
    kind = so.KINDS["queue"]
    wanted = so.wanted_object(kind, "big.q", None, {"hostlist": "@allhosts"})
    assert wanted["qname"] == "big.q"
    assert wanted["pe_list"] == "NONE"  # the stock "make smp mpi" names PEs Debian lacks
    assert set(so.differences(None, wanted)) == set(wanted)


def test_unknown_attributes_are_named():
    kind = so.KINDS["pe"]
    assert so.unknown_attributes(kind, None, {"slots": 1, "slotz": 2}) == ["slotz"]
    current = so.parse_object(fixture("qconf_ssconf.txt"))
    assert so.unknown_attributes(so.KINDS["scheduler"], current, {"flush_submit_sec": 1}) == []


def test_render_then_parse_round_trips():
    for name in ("qconf_sq_all.q.txt", "qconf_shgrp_wrapped.txt", "qconf_ssconf.txt"):
        parsed = so.parse_object(fixture(name))
        assert so.parse_object(so.render_object(parsed)) == parsed


def test_global_configuration_is_written_to_a_file_named_global():
    assert so.KINDS["global"].file_name == "global"
    assert so.KINDS["global"].singleton
