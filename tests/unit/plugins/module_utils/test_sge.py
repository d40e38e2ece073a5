"""Unit tests of plugins/module_utils/sge.py on text captured from a real SGE 8.1.9.

The fixtures in tests/unit/fixtures/sge/ were written by capture.sh there, from Debian's
gridengine 8.1.9 daemons; qconf_Mc_matrix.txt holds qmaster's verdict on each of 344
complex lines, which the validator must reproduce.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.segway.cluster.plugins.module_utils import sge

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sge"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def entry(line: str) -> sge.ComplexEntry:
    (parsed,) = sge.parse_complex_list(line)
    return parsed


# --------------------------------------------------------------------------- qconf -sc


def test_parse_debian_complex_list():
    text = fixture("qconf_sc_debian.txt")
    entries = sge.parse_complex_list(text)

    data_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(entries) == len(data_lines) == 52
    assert text.splitlines()[0].startswith("#name")
    assert text.splitlines()[-1].startswith("# >#<")
    assert sge.find_complex(entries, "slots") == sge.ComplexEntry(
        "slots", "s", "INT", "<=", "YES", "YES", "1", "1000"
    )
    assert sge.find_complex(entries, "h_rt").default == "0:0:0"
    assert sge.find_complex(entries, "mem_requested") is None
    assert {e.type for e in entries} == {
        "STRING",
        "DOUBLE",
        "BOOL",
        "MEMORY",
        "TIME",
        "HOST",
        "INT",
    }


def test_parse_exotic_complex_list():
    entries = sge.parse_complex_list(fixture("qconf_sc_exotic.txt"))
    by_name = {e.name: e for e in entries}

    assert by_name["mem_requested"].line() == "mem_requested mr MEMORY <= YES YES 0 10"
    assert by_name["zz_fx_excl"].fields() == (
        "zz_fx_excl",
        "fxx",
        "BOOL",
        "EXCL",
        "YES",
        "JOB",
        "0",
        "1000",
    )
    assert by_name["zz_fx_time"].requestable == "FORCED"
    assert by_name["zz_fx_double"].default == "1.5"
    assert by_name["zz_fx_double"].urgency == "-2.5"
    assert {"CSTRING", "RESTRING", "HOST"} <= {e.type for e in entries}
    assert "zz_fx_a_rather_long_complex_name" in by_name


@pytest.mark.parametrize("name", ["qconf_sc_debian.txt", "qconf_sc_exotic.txt"])
def test_every_entry_qmaster_shows_passes_validation(name):
    for parsed in sge.parse_complex_list(fixture(name)):
        assert sge.complex_errors(parsed) == [], parsed


@pytest.mark.parametrize("name", ["qconf_sc_debian.txt", "qconf_sc_exotic.txt"])
def test_render_round_trip(name):
    entries = sge.parse_complex_list(fixture(name))
    rendered = sge.render_complex_list(entries)

    assert sge.parse_complex_list(rendered) == entries
    lines = rendered.splitlines()
    assert lines[0].split() == [
        "#name",
        "shortcut",
        "type",
        "relop",
        "requestable",
        "consumable",
        "default",
        "urgency",
    ]
    assert lines[1].startswith("#---")
    # columns line up like qconf's: every field starts where its header starts
    starts = [lines[0].index(word) for word in lines[0].split()]
    starts[0] = 0
    for line in lines[2:-1]:
        for start in starts[1:]:
            assert line[start - 1] == " " and line[start] != " ", (line, start)


def test_parse_rejects_short_lines():
    with pytest.raises(ValueError, match=r"line 2 .* 7 fields"):
        sge.parse_complex_list("#c\nzz zz MEMORY <= YES YES 0\n")


def test_make_complex_normalises_keywords_like_qconf():
    made = sge.make_complex(
        name="m",
        shortcut="m",
        type="memory",
        relop="excl",
        requestable="yes",
        consumable="job",
        default=0,
        urgency=10,
    )
    assert made == sge.ComplexEntry("m", "m", "MEMORY", "EXCL", "YES", "JOB", "0", "10")


def test_upsert_and_remove():
    entries = sge.parse_complex_list(fixture("qconf_sc_debian.txt"))
    wanted = entry("mem_requested mr MEMORY <= YES YES 0 10")

    added = sge.upsert_complex(entries, wanted)
    assert added[:-1] == entries and added[-1] == wanted

    changed = sge.upsert_complex(added, entry("mem_requested mr MEMORY <= YES YES 0 20"))
    assert len(changed) == len(added)
    assert [e for e in changed if e.name != "mem_requested"] == entries
    assert sge.find_complex(changed, "mem_requested").urgency == "20"

    assert sge.remove_complex(changed, "mem_requested") == entries


def test_name_conflicts():
    entries = sge.parse_complex_list(fixture("qconf_sc_debian.txt"))
    assert sge.name_conflicts(entries, entry("mem_requested mr MEMORY <= YES YES 0 10")) == []
    assert sge.name_conflicts(entries, entry("mem_requested h MEMORY <= YES YES 0 10")) == [
        "hostname (shortcut h)"
    ]
    assert sge.name_conflicts(entries, entry("zz s_vmem MEMORY <= YES YES 0 10")) == [
        "s_vmem (shortcut s_vmem)"
    ]
    # redefining an existing complex under its own name is not a conflict
    assert sge.name_conflicts(entries, entry("slots s INT <= YES YES 1 500")) == []


def test_complex_equal_compares_values_not_spelling():
    base = entry("mem_requested mr MEMORY <= YES YES 0 10")
    assert sge.complex_equal(base, entry("mem_requested mr MEMORY <= YES YES 0 10.0"))
    assert sge.complex_equal(
        entry("m m MEMORY <= YES YES 1G 1"), entry("m m MEMORY <= YES YES 1024M 1")
    )
    assert not sge.complex_equal(base, entry("mem_requested mr MEMORY <= YES YES 0 20"))
    assert not sge.complex_equal(base, entry("mem_requested mr MEMORY <= YES JOB 0 10"))
    assert not sge.complex_equal(
        entry("m m MEMORY <= YES YES 1G 1"), entry("m m MEMORY <= YES YES 1g 1")
    )


# --------------------------------------------------------------------------- validation


def matrix() -> list[tuple[str, str, str]]:
    rows = []
    for raw in fixture("qconf_Mc_matrix.txt").splitlines():
        verdict, line, *message = (part.strip() for part in raw.split(" | "))
        rows.append((verdict, line, message[0] if message else ""))
    return rows


# Lines qmaster 8.1.9 judges differently from the validator, on purpose:
# - consumable HOST does not exist in 8.1.9 (qconf fails to parse the line); the module
#   passes it on, qconf refuses it, and nothing is written;
# - qmaster stores any text as the default of a consumable, even a malformed or negative
#   MEMORY value; the module refuses those.
KNOWN_STRICTER = {
    "zz_probe zzp MEMORY <= YES YES 3X 0",
    "zz_probe zzp MEMORY <= YES YES -1G 0",
    "zz_probe zzp MEMORY <= YES YES 4GB 0",
}


def test_matrix_fixture_is_complete():
    rows = matrix()
    assert len(rows) == 344
    assert sum(verdict == "ACCEPTED" for verdict, _, _ in rows) == 100


@pytest.mark.parametrize(("verdict", "line", "message"), matrix(), ids=lambda v: str(v)[:60])
def test_validator_agrees_with_qmaster(verdict, line, message):
    parsed = entry(line)
    errors = sge.complex_errors(parsed)
    if parsed.consumable == "HOST":
        assert verdict == "REJECTED" and "should end with" in message
        return
    if line in KNOWN_STRICTER:
        assert verdict == "ACCEPTED" and errors
        return
    assert (verdict == "ACCEPTED") == (errors == []), (line, message, errors)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("m m STRING <= YES NO NONE 0", "type=STRING with relop=<= is rejected by SGE"),
        ("m m HOST > YES NO NONE 0", "HOST complexes allow only == and !="),
        ("m m CSTRING == YES YES NONE 0", "type=CSTRING with consumable=YES is rejected"),
        ("m m BOOL != YES NO 0 0", "BOOL complexes allow only == and EXCL"),
        ("m m BOOL EXCL YES NO 0 0", "EXCL needs consumable YES or JOB"),
        ("m m BOOL == YES YES 0 0", "a consumable BOOL must use relop EXCL"),
        ("m m INT EXCL YES NO 0 0", "only BOOL complexes can use EXCL"),
        ("m m MEMORY >= YES YES 0 0", "consumables allow only relop <="),
        ("m m MEMORY <= YES NO 1G 0", "default='1G' is rejected by SGE: only a consumable"),
        ("m m MEMORY <= NO YES 0 0", "requestable=NO needs a non-zero default"),
        ("m m MEMORY <= FORCED YES 1G 0", "requestable=FORCED must have default 0"),
        ("m m STRING == YES NO foo 0", "STRING complexes must have default NONE"),
        ("m m MEMORY <= YES YES 3X 0", "default='3X' is not a valid MEMORY value"),
        ("m m MEMORY <= YES YES -1G 0", "default='-1G' is not a valid MEMORY value"),
        ("m m MEMORY <= YES YES 0 abc", "urgency='abc' is not a number"),
        ("m m=x MEMORY <= YES YES 0 0", "shortcut='m=x' is not a valid complex name"),
        ("m m FLOAT <= YES YES 0 0", "type='FLOAT' is not one of INT, DOUBLE"),
        ("m m MEMORY =< YES YES 0 0", "relop='=<' is not one of"),
        ("m m MEMORY <= MAYBE YES 0 0", "requestable='MAYBE' is not one of YES, NO, FORCED"),
    ],
)
def test_complex_errors_name_option_and_value(line, expected):
    errors = sge.complex_errors(entry(line))
    assert any(expected in error for error in errors), errors


def test_segway_line_is_valid():
    assert sge.complex_errors(entry("mem_requested mr MEMORY <= YES YES 0 10")) == []


# Values as qmaster reads them: each pair was set as a host value on the real qmaster and
# read back with `qhost -F` (e.g. 1k -> 1000.000, 1K -> 1.000K, 017k -> 14.648K).
@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("4G", 4 * 1024**3),
        ("1k", 1000),
        ("1K", 1024),
        ("1m", 1000**2),
        ("1M", 1024**2),
        ("1g", 1000**3),
        ("1t", 1000**4),
        ("1T", 1024**4),
        ("1.5G", 1.5 * 1024**3),
        ("1.5", 1.5),
        ("0x10", 16),
        ("0X1F", 31),
        ("010", 8),
        ("017k", 15000),
        ("09.5", 9.5),
        ("1e3", 1000),
        ("4.5e2K", 450 * 1024),
        ("1.5e-3G", 1.5e-3 * 1024**3),
        (".5G", 0.5 * 1024**3),
        ("0", 0),
    ],
)
def test_parse_number(text, number):
    assert sge.parse_number(text) == pytest.approx(number)


# Refused by qmaster as host values ("is not a memory value", "negative value", "can not
# be set to infinity") or, for +4G, refused by the module to keep the syntax simple.
@pytest.mark.parametrize(
    "text",
    ["3X", "-1G", "4GB", "4Gi", "4 G", "4Gk", "1P", "1b", "08", "INFINITY", "", "+4G", "1,5G"],
)
def test_parse_number_refuses(text):
    with pytest.raises(ValueError):
        sge.parse_number(text)


def test_parse_time_and_bool():
    assert sge.parse_time("1:30:0") == 5400
    assert sge.parse_time("0:90:0") == 5400
    assert sge.parse_time("5400") == 5400
    with pytest.raises(ValueError):
        sge.parse_time("1:30")
    assert sge.parse_bool("true") is True
    assert sge.parse_bool("1") is True
    assert sge.parse_bool("FALSE") is False
    with pytest.raises(ValueError):
        sge.parse_bool("yes")


def test_values_equal():
    assert sge.values_equal("MEMORY", "1G", "1024M")
    assert sge.values_equal("MEMORY", "4G", "4G")
    assert not sge.values_equal("MEMORY", "4G", "4g")
    assert sge.values_equal("TIME", "1:30:0", "5400")
    assert sge.values_equal("BOOL", "true", "TRUE")
    assert not sge.values_equal("STRING", "Foo", "foo")
    assert not sge.values_equal("MEMORY", "3X", "3G")


def test_host_value_errors():
    assert sge.host_value_errors("MEMORY", {"vm": "4G", "global": "0.5T"}) == []
    errors = sge.host_value_errors("MEMORY", {"node1": "3X", "node2": "-1G", "node3": "2G"})
    assert len(errors) == 2
    assert errors[0].startswith("host_values[node1]='3X' is not a valid MEMORY value")
    assert errors[1].startswith("host_values[node2]='-1G' is not a valid MEMORY value")
    assert sge.host_value_errors("STRING", {"vm": "a,b"})[0].startswith("host_values[vm]='a,b'")
    assert sge.host_value_errors("INT", {"vm": "4"}) == []


# --------------------------------------------------------------------------- qconf -se/-sq


def test_parse_exec_host_without_complex_values():
    config = sge.parse_config(fixture("qconf_se_none.txt"))
    assert config["hostname"] == fixture("qconf_sel.txt").split()[0]
    assert config["complex_values"] == "NONE"
    assert sge.parse_complex_values(config["complex_values"]) == {}
    # the wrapped load_values list is joined into one value
    loads = sge.parse_complex_values(config["load_values"])
    assert {"load_avg", "mem_total", "np_load_long", "m_topology_inuse"} <= set(loads)
    assert config["processors"] == "2"
    assert config["report_variables"] == "NONE"


def test_parse_exec_host_with_several_values():
    text = fixture("qconf_se_several.txt")
    config = sge.parse_config(text)
    assert text.count("\\\n") >= 2  # qconf wrapped complex_values over three lines
    assert sge.parse_complex_values(config["complex_values"]) == {
        "mem_requested": "4G",
        "zz_fx_excl": "true",
        "zz_fx_time": "5400",  # set as 1:30:0, stored in seconds
        "zz_fx_double": "2k",
        "zz_fx_cstring": "Foo",
        "zz_fx_a_rather_long_complex_name": "017",
    }
    assert config["user_lists"] == "NONE"


def test_parse_global_host():
    config = sge.parse_config(fixture("qconf_se_global.txt"))
    assert config["hostname"] == sge.GLOBAL_HOST
    assert sge.parse_complex_values(config["complex_values"]) == {
        "zz_fx_a_rather_long_complex_name": "8"
    }
    assert config["load_values"] == "NONE"


def test_parse_queue_complex_values():
    config = sge.parse_config(fixture("qconf_sq.txt"))
    host = fixture("qconf_sel.txt").split()[0]
    assert config["qname"] == "zz_fx.q"
    assert sge.parse_queue_complex_values(config["complex_values"]) == {
        "": {"mem_requested": "1G"},
        host: {"mem_requested": "2G", "zz_fx_double": "3"},
    }
    assert sge.parse_queue_complex_values("NONE") == {"": {}}


def test_complex_values_round_trip():
    values = {"mem_requested": "4G", "slots": "2"}
    assert sge.render_complex_values(values) == "mem_requested=4G,slots=2"
    assert sge.parse_complex_values(sge.render_complex_values(values)) == values
    assert sge.render_complex_values({}) == "NONE"
    with pytest.raises(ValueError, match="has no '='"):
        sge.parse_complex_values("mem_requested")


def test_parse_name_lists():
    assert sge.parse_name_list(fixture("qconf_sm.txt")) == ["root", "sgeadmin"]
    assert sge.parse_name_list(fixture("qconf_sql.txt")) == ["zz_fx.q"]
    assert sge.parse_name_list(fixture("qconf_sql_none.stderr")) == []
    assert len(sge.parse_name_list(fixture("qconf_sel.txt"))) == 1


def test_host_value_changes():
    current = {"vm": {"mem_requested": "4G", "slots": "2"}, "n2": {}, "n3": {"mem_requested": "1G"}}
    wanted = {"vm": "4096M", "n2": "2G", "n3": "2G"}
    assert sge.host_value_changes("MEMORY", "mem_requested", current, wanted) == {
        "n2": (None, "2G"),
        "n3": ("1G", "2G"),
    }


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("qconf_error_unreachable.txt", "unreachable"),
        ("qconf_error_not_manager.txt", "denied"),
        ("qconf_error_referenced.txt", "rejected"),
        ("qconf_error_relop.txt", "rejected"),
    ],
)
def test_classify_captured_failures(name, kind):
    assert sge.classify_failure(fixture(name)) == kind


# Not captured (this machine's host is an admin host): SGE 8.1.9's message catalogue texts.
@pytest.mark.parametrize(
    "text",
    [
        'denied: host "node1" is no admin host',
        'error: denied: host "node1" is neither submit nor admin host',
    ],
)
def test_classify_host_not_admin(text):
    assert sge.classify_failure(text) == "denied"


def test_classify_missing_cell():
    # qconf's words when SGE_ROOT points at a directory without the cell
    text = 'error: cell directory "/tmp/empty/default" doesn\'t exist'
    assert sge.classify_failure(text) == "cell"


class FakeRun:
    """Stands in for AnsibleModule.run_command; records calls, answers from a table."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.files: list[str] = []

    def __call__(self, argv, environ_update=None):
        self.calls.append((argv, environ_update))
        if argv[1] == "-Mc":
            self.files.append(Path(argv[2]).read_text())
            return 0, "", ""
        return self.answers[tuple(argv[1:])]


def test_qconf_runs_with_root_and_cell(tmp_path):
    run = FakeRun({("-sc",): (0, fixture("qconf_sc_debian.txt"), "")})
    qconf = sge.Qconf(run, "/sge/bin/lx-amd64/qconf", "/sge", "cell1", tmpdir=str(tmp_path))
    assert len(qconf.complexes()) == 52
    assert run.calls == [
        (["/sge/bin/lx-amd64/qconf", "-sc"], {"SGE_ROOT": "/sge", "SGE_CELL": "cell1"})
    ]


def test_qconf_failure_carries_kind_and_words():
    run = FakeRun({("-sc",): (1, "", fixture("qconf_error_unreachable.txt"))})
    qconf = sge.Qconf(run, "qconf", "/sge", "default")
    with pytest.raises(sge.QconfError) as caught:
        qconf.complexes()
    assert caught.value.kind == "unreachable"
    assert "unable to send message to qmaster" in caught.value.message
    assert "`qconf -sc` failed (rc=1)" in caught.value.message


def test_qconf_modify_complexes_writes_a_file_and_removes_it(tmp_path):
    run = FakeRun({})
    qconf = sge.Qconf(run, "qconf", "/sge", "default", tmpdir=str(tmp_path))
    entries = sge.parse_complex_list(fixture("qconf_sc_exotic.txt"))
    qconf.modify_complexes(entries)
    assert sge.parse_complex_list(run.files[0]) == entries
    assert list(tmp_path.iterdir()) == []


def test_qconf_empty_lists_are_not_errors():
    run = FakeRun(
        {
            ("-sql",): (1, "", fixture("qconf_sql_none.stderr")),
            ("-sel",): (1, "", "no execution host defined\n"),
        }
    )
    qconf = sge.Qconf(run, "qconf", "/sge", "default")
    assert qconf.queues() == []
    assert qconf.exec_hosts() == []


def test_complex_references_lists_hosts_and_queues():
    host = fixture("qconf_sel.txt").split()[0]
    run = FakeRun(
        {
            ("-sel",): (0, fixture("qconf_sel.txt"), ""),
            ("-se", "global"): (0, fixture("qconf_se_global.txt"), ""),
            ("-se", host): (0, fixture("qconf_se_several.txt"), ""),
            ("-sql",): (0, fixture("qconf_sql.txt"), ""),
            ("-sq", "zz_fx.q"): (0, fixture("qconf_sq.txt"), ""),
        }
    )
    qconf = sge.Qconf(run, "qconf", "/sge", "default")
    assert qconf.complex_references("mem_requested") == {"hosts": [host], "queues": ["zz_fx.q"]}
    assert qconf.complex_references("zz_fx_a_rather_long_complex_name") == {
        "hosts": ["global", host],
        "queues": [],
    }
    assert qconf.complex_references("zz_fx_double") == {"hosts": [host], "queues": ["zz_fx.q"]}
    assert qconf.complex_references("h_vmem") == {"hosts": [], "queues": []}


def test_set_host_complex_value_uses_mattr():
    run = FakeRun({("-mattr", "exechost", "complex_values", "mem_requested=4G", "n1"): (0, "", "")})
    sge.Qconf(run, "qconf", "/sge", "default").set_host_complex_value("n1", "mem_requested", "4G")
    assert run.calls[0][0] == [
        "qconf",
        "-mattr",
        "exechost",
        "complex_values",
        "mem_requested=4G",
        "n1",
    ]


def test_find_qconf(tmp_path):
    assert sge.find_qconf(str(tmp_path)) is None
    assert sge.find_qconf(str(tmp_path), which=lambda name: f"/usr/bin/{name}") == "/usr/bin/qconf"
    for arch in ("lx-amd64", "lx-arm64"):
        binary = tmp_path / "bin" / arch / "qconf"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    assert sge.find_qconf(str(tmp_path), arch="lx-arm64") == str(tmp_path / "bin/lx-arm64/qconf")
    assert sge.find_qconf(str(tmp_path)) == str(tmp_path / "bin/lx-amd64/qconf")
