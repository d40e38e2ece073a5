"""Integration tests: segway.cluster.sge_complex against a real sge_qmaster and sge_execd.

Every test runs the module through `ansible-playbook -c local` and checks the result with
the Grid Engine's own commands (`qconf -sc`, `qconf -se`, `qhost -F`), never with the
module's code. Run as root; see conftest.py and setup_sge.sh.
"""

from __future__ import annotations

import itertools

import pytest
from ansible_collections.segway.cluster.plugins.module_utils import sge as sge_utils

SEGWAY_LINE = ["mem_requested", "mr", "MEMORY", "<=", "YES", "YES", "0", "10"]


def test_create_then_second_run_is_unchanged(clean):
    assert clean.complex_line("mem_requested") is None

    first = clean.run_module({})
    assert first["changed"] is True
    assert clean.complex_line("mem_requested") == SEGWAY_LINE
    assert first["complex"] == dict(zip(sge_utils.COMPLEX_FIELDS, SEGWAY_LINE, strict=True))

    before = clean.complex_list()
    second = clean.run_module({})
    assert second["changed"] is False
    assert second["hosts_changed"] == []
    assert clean.complex_list() == before


def test_check_mode_changes_nothing(clean):
    complexes = clean.complex_list()
    values = clean.host_values(clean.host)

    result = clean.run_module({"host_values": {clean.host: "4G"}}, check=True, diff=True)

    assert result["changed"] is True
    assert result["hosts_changed"] == [clean.host]
    assert clean.complex_list() == complexes
    assert clean.complex_line("mem_requested") is None
    assert clean.host_values(clean.host) == values
    assert result["diff"]["before"] == f"complex: (absent)\nhost {clean.host}: (unset)\n"
    assert result["diff"]["after"] == (
        f"complex: {' '.join(SEGWAY_LINE)}\nhost {clean.host}: mem_requested=4G\n"
    )


def test_urgency_change_updates_only_that_field(clean):
    clean.run_module({})
    before = clean.complex_list().splitlines()

    result = clean.run_module({"urgency": "20"}, diff=True)

    after = clean.complex_list().splitlines()
    assert result["changed"] is True
    assert len(after) == len(before)
    changed = [
        (old.split(), new.split()) for old, new in zip(before, after, strict=True) if old != new
    ]
    assert changed == [(SEGWAY_LINE, [*SEGWAY_LINE[:7], "20"])]
    assert result["diff"]["after"].startswith("complex: mem_requested mr MEMORY <= YES YES 0 20")
    assert clean.run_module({"urgency": "20"})["changed"] is False


def test_host_values_appear_in_qhost(clean):
    assert clean.qhost_resource("mem_requested") is None

    result = clean.run_module({"host_values": {clean.host: "4G"}})
    assert result["changed"] is True
    assert result["hosts_changed"] == [clean.host]
    assert clean.qhost_resource("mem_requested") == "hc:mem_requested=4.000G"

    same = clean.run_module({"host_values": {clean.host: "4096M"}})
    assert same["changed"] is False
    assert clean.host_values(clean.host)["mem_requested"] == "4G"

    clean.run_module({"host_values": {clean.host: "1536M", "global": "64G"}})
    assert clean.qhost_resource("mem_requested") == "hc:mem_requested=1.500G"
    assert clean.qhost_resource("mem_requested", "global") == "gc:mem_requested=64.000G"
    assert clean.host_values("global") == {"mem_requested": "64G"}


def test_other_complex_values_on_the_host_survive(clean):
    other = "zz_it_other zzio INT <= YES YES 0 0"
    clean.add_complex(other)
    clean.set_host_value(clean.host, "zz_it_other", "7")

    clean.run_module({"host_values": {clean.host: "4G"}})
    assert clean.host_values(clean.host) == {"zz_it_other": "7", "mem_requested": "4G"}

    clean.run_module({"host_values": {clean.host: "2G"}})
    assert clean.host_values(clean.host) == {"zz_it_other": "7", "mem_requested": "2G"}
    assert clean.qhost_resource("zz_it_other") == "hc:zz_it_other=7.000000"
    assert clean.complex_line("zz_it_other") == other.split()


def test_absent_removes(clean):
    clean.run_module({})
    others = [
        line for line in clean.complex_list().splitlines() if not line.startswith("mem_requested ")
    ]

    result = clean.run_module({"state": "absent"}, diff=True)
    assert result["changed"] is True
    assert result["complex"] == {}
    assert clean.complex_line("mem_requested") is None
    assert clean.complex_list().splitlines() == others
    assert result["diff"]["before"] == f"complex: {' '.join(SEGWAY_LINE)}\n"

    assert clean.run_module({"state": "absent"})["changed"] is False


def test_absent_while_referenced_names_hosts_and_queue(clean):
    clean.run_module({"host_values": {clean.host: "1G", "global": "8G"}})
    clean.add_queue("zz_it.q", f"NONE,[{clean.host}=mem_requested=2G]")
    complexes = clean.complex_list()

    result = clean.run_module({"state": "absent"}, fails=True)

    assert result["failed"] is True
    assert (
        f"still referenced by exec host(s) global, {clean.host} and queue(s) zz_it.q"
        in result["msg"]
    )
    assert result["references"] == {"hosts": ["global", clean.host], "queues": ["zz_it.q"]}
    assert clean.complex_list() == complexes
    assert clean.host_values(clean.host) == {"mem_requested": "1G"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"default": "3X"}, "default='3X' is not a valid MEMORY value"),
        ({"host_values": {"HOST": "-1G"}}, "host_values[HOST]='-1G' is not a valid MEMORY value"),
        ({"host_values": {"HOST": "3X"}}, "host_values[HOST]='3X' is not a valid MEMORY value"),
        (
            {"type": "STRING", "default": "NONE", "consumable": "NO"},
            "type=STRING with relop=<= is rejected by SGE",
        ),
        (
            {"type": "BOOL", "relop": "!=", "consumable": "NO"},
            "type=BOOL with relop=!= is rejected by SGE",
        ),
        ({"relop": ">="}, "type=MEMORY with relop=>= and consumable=YES is rejected by SGE"),
        ({"host_values": {"HOST": "2G", "node999": "2G"}}, "unknown exec host(s) node999"),
        ({"shortcut": "h"}, "shortcut='h' is already used by complex hostname"),
    ],
    ids=[
        "default-3X",
        "host-minus-1G",
        "host-3X",
        "string-relop",
        "bool-relop",
        "consumable-relop",
        "unknown-host",
        "shortcut-clash",
    ],
)
def test_bad_input_fails_before_writing(clean, args, message):
    args = {
        key: (
            {clean.host if h == "HOST" else h: v for h, v in value.items()}
            if key == "host_values"
            else value
        )
        for key, value in args.items()
    }
    message = message.replace("HOST", clean.host)
    complexes = clean.complex_list()
    values = clean.host_values(clean.host)

    result = clean.run_module(args, fails=True)

    assert result["failed"] is True
    assert message in result["msg"]
    assert clean.complex_list() == complexes
    assert clean.host_values(clean.host) == values


def test_consumable_host_is_refused_by_sge_8_1_9_without_change(clean):
    complexes = clean.complex_list()
    result = clean.run_module({"consumable": "HOST"}, fails=True)
    assert result["failed"] is True
    assert result["msg"].startswith("consumable=HOST was refused by this Grid Engine")
    assert clean.complex_list() == complexes


def test_qconf_missing(clean, tmp_path):
    complexes = clean.complex_list()
    result = clean.run_module(
        {"sge_root": str(tmp_path)}, environment={"PATH": str(tmp_path)}, fails=True
    )
    assert result["failed"] is True
    assert result["msg"].startswith(f"qconf not found: not in {tmp_path}/bin/<arch>/")

    # qconf on PATH, but no cell under that root
    result = clean.run_module({"sge_root": str(tmp_path)}, fails=True)
    assert result["failed"] is True
    assert f"no Grid Engine cell 'default' under sge_root='{tmp_path}'" in result["msg"]
    assert clean.complex_list() == complexes


def test_qmaster_unreachable(clean):
    clean.stop_qmaster()
    try:
        result = clean.run_module({}, fails=True)
    finally:
        clean.ensure_running()
    assert result["failed"] is True
    assert result["qconf_error"] == "unreachable"
    assert f"sge_qmaster on '{clean.host}' is unreachable" in result["msg"]
    assert "unable to send message to qmaster" in result["msg"]
    assert clean.complex_line("mem_requested") is None


def test_caller_not_a_manager(clean):
    assert "sgetest" not in clean.qconf("-sm").split()
    complexes = clean.complex_list()

    result = clean.run_module(
        {"host_values": {clean.host: "1G"}}, become_user="sgetest", fails=True
    )

    assert result["failed"] is True
    assert "user 'sgetest' is not an SGE manager (managers: root, sgeadmin)" in result["msg"]
    assert clean.complex_list() == complexes
    assert "mem_requested" not in clean.host_values(clean.host)


def candidate_lines(prefix: str) -> list[str]:
    """Complex lines covering every type/relop/consumable combination and default rule."""
    fields = []
    for consumable, ctype, relop in itertools.product(
        ("NO", "YES", "JOB"), sge_utils.COMPLEX_TYPES, sge_utils.RELOPS
    ):
        default = "NONE" if ctype in sge_utils.STRING_TYPES else "0"
        fields.append(f"{ctype} {relop} YES {consumable} {default} 0")
    for requestable, consumable, (ctype, relop, default) in itertools.product(
        sge_utils.REQUESTABLE,
        ("NO", "YES", "JOB"),
        (
            ("MEMORY", "<=", "0"),
            ("MEMORY", "<=", "1G"),
            ("TIME", "<=", "0:0:0"),
            ("TIME", "<=", "1:0:0"),
            ("INT", "<=", "2"),
            ("BOOL", "EXCL", "0"),
            ("BOOL", "EXCL", "1"),
            ("BOOL", "==", "TRUE"),
        ),
    ):
        fields.append(f"{ctype} {relop} {requestable} {consumable} {default} 0")
    fields += [f"STRING == YES NO {default} 0" for default in ("NONE", "none", "foo")]
    fields += [f"MEMORY <= YES YES 0 {urgency}" for urgency in ("1.5", "-5", "+2", "1G", "abc")]
    return [f"{prefix}_{i:03d} zzp{i:03d} {rest}" for i, rest in enumerate(fields)]


def qmaster_accepts(clean, base: str, line: str) -> bool:
    """Whether `qconf -Mc` adds `line` to the list `base`; the list is `base` again after."""
    path = clean.tmp / "probe.txt"
    path.write_text(base + line + "\n")
    if clean.qconf_rc("-Mc", str(path)) != 0:
        return False  # refused as a whole ("has not been changed"); checked at the end
    added = clean.complex_line(line.split(maxsplit=1)[0]) is not None
    clean.write_complex_list(base)
    return added


def test_validator_agrees_with_the_real_qmaster(clean):
    """Each line the validator accepts, qmaster accepts; each it refuses, qmaster refuses.

    `qconf -Mc` refuses a whole file if one entry is invalid, so the accepted lines are
    sent together (and must all be added), the refused ones one at a time.
    """
    base = clean.complex_list()
    ours = {}
    for line in candidate_lines(clean.probe_prefix):
        (entry,) = sge_utils.parse_complex_list(line)
        ours[line] = sge_utils.complex_errors(entry)
    accepted = [line for line, errors in ours.items() if not errors]
    refused = [line for line, errors in ours.items() if errors]
    assert accepted and refused

    clean.write_complex_list(base + "\n".join(accepted) + "\n")
    added = {line.split()[0] for line in clean.complex_list().splitlines()}
    clean.write_complex_list(base)
    if any(line.split()[0] not in added for line in accepted):
        culprits = [line for line in accepted if not qmaster_accepts(clean, base, line)]
        assert culprits == [], "the module accepts these, qmaster refuses them"

    wrongly_refused = [(line, ours[line]) for line in refused if qmaster_accepts(clean, base, line)]
    assert wrongly_refused == [], "the module refuses these, qmaster accepts them"
    assert clean.complex_list() == base
