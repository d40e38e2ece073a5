"""Unit tests of plugins/modules/sge_complex.py against a simulated qconf.

`FakeQconfCommand` plays qconf for `Qconf.run`: it starts from text captured from a real
SGE 8.1.9 (tests/unit/fixtures/sge/) and keeps the complex list and host values in memory,
so the module's decisions (what to write, in which order, what to refuse) are tested
without daemons. The integration tests run the same module against real ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.segway.cluster.plugins.module_utils import sge
from ansible_collections.segway.cluster.plugins.modules import sge_complex

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sge"
HOST = (FIXTURES / "qconf_sel.txt").read_text().split()[0]
SEGWAY_LINE = "mem_requested mr MEMORY <= YES YES 0 10"


class FakeQconfCommand:
    """A run_command that answers qconf's read commands and applies its write commands."""

    def __init__(self, managers=("root", "sgeadmin"), queues=None) -> None:
        self.complexes = sge.parse_complex_list((FIXTURES / "qconf_sc_debian.txt").read_text())
        self.hosts: dict[str, dict[str, str]] = {HOST: {}, "global": {}}
        self.queues: dict[str, str] = dict(queues or {})
        self.managers = list(managers)
        self.writes: list[list[str]] = []

    def __call__(self, argv, environ_update=None):
        args = argv[1:]
        if args[0] in ("-Mc", "-mattr"):
            self.writes.append(args)
        handler = {
            "-sc": lambda: sge.render_complex_list(self.complexes),
            "-sel": lambda: "\n".join(h for h in self.hosts if h != "global") + "\n",
            "-se": lambda: self.show_host(args[1]),
            "-sm": lambda: "\n".join(self.managers) + "\n",
            "-sql": lambda: "\n".join(self.queues) + "\n" if self.queues else None,
            "-sq": lambda: "qname " + args[1] + "\ncomplex_values " + self.queues[args[1]] + "\n",
            "-Mc": lambda: self.modify_complexes(Path(args[1]).read_text()),
            "-mattr": lambda: self.mattr(*args[1:]),
        }[args[0]]
        out = handler()
        if out is None:
            return 1, "", "no cqueue list defined\n"
        return 0, out, ""

    def show_host(self, host):
        template = (FIXTURES / "qconf_se_none.txt").read_text()
        values = sge.render_complex_values(self.hosts[host])
        return re.sub(r"(?m)^complex_values .*$", "complex_values        " + values, template)

    def modify_complexes(self, text):
        self.complexes = sge.parse_complex_list(text)
        return ""

    def mattr(self, obj, attribute, assignment, host):
        assert (obj, attribute) == ("exechost", "complex_values")
        name, _, value = assignment.partition("=")
        self.hosts[host][name] = value
        return ""

    def line(self, name):
        found = sge.find_complex(self.complexes, name)
        return found.line() if found else None


def qconf_for(fake: FakeQconfCommand) -> sge.Qconf:
    return sge.Qconf(
        fake, "/var/lib/gridengine/bin/lx-amd64/qconf", "/var/lib/gridengine", "default"
    )


def wanted(line: str = SEGWAY_LINE) -> sge.ComplexEntry:
    (parsed,) = sge.parse_complex_list(line)
    return parsed


# --------------------------------------------------------------------------- ensure_present


def test_create_then_nothing_to_do():
    fake = FakeQconfCommand()
    qconf = qconf_for(fake)
    result = sge_complex.ensure_present(qconf, wanted(), {HOST: "4G"}, False, "root")

    assert result["changed"] is True
    assert result["complex"] == wanted().to_dict()
    assert result["hosts_changed"] == [HOST]
    assert fake.line("mem_requested") == SEGWAY_LINE
    assert fake.hosts[HOST] == {"mem_requested": "4G"}
    assert [w[0] for w in fake.writes] == ["-Mc", "-mattr"]

    fake.writes.clear()
    again = sge_complex.ensure_present(qconf, wanted(), {HOST: "4096M"}, False, "root")
    assert again["changed"] is False
    assert again["hosts_changed"] == []
    assert fake.writes == []
    assert fake.hosts[HOST] == {"mem_requested": "4G"}  # same amount, not rewritten


def test_check_mode_writes_nothing_but_reports_the_change():
    fake = FakeQconfCommand()
    before = sge.render_complex_list(fake.complexes)
    result = sge_complex.ensure_present(qconf_for(fake), wanted(), {HOST: "4G"}, True, "root")

    assert result["changed"] is True
    assert result["hosts_changed"] == [HOST]
    assert fake.writes == []
    assert sge.render_complex_list(fake.complexes) == before
    assert result["diff"]["before"] == f"complex: (absent)\nhost {HOST}: (unset)\n"
    assert result["diff"]["after"] == f"complex: {SEGWAY_LINE}\nhost {HOST}: mem_requested=4G\n"


def test_urgency_change_rewrites_only_that_entry():
    fake = FakeQconfCommand()
    qconf = qconf_for(fake)
    sge_complex.ensure_present(qconf, wanted(), {}, False, "root")
    before = list(fake.complexes)

    result = sge_complex.ensure_present(
        qconf, wanted("mem_requested mr MEMORY <= YES YES 0 20"), {}, False, "root"
    )

    assert result["changed"] is True
    changed = [(a, b) for a, b in zip(before, fake.complexes, strict=True) if a != b]
    assert changed == [(wanted(), wanted("mem_requested mr MEMORY <= YES YES 0 20"))]
    assert result["diff"]["before"].startswith("complex: " + SEGWAY_LINE)
    assert result["diff"]["after"].startswith("complex: mem_requested mr MEMORY <= YES YES 0 20")


def test_other_host_values_are_kept():
    fake = FakeQconfCommand()
    fake.complexes.append(wanted("zz_other zzo INT <= YES YES 0 0"))
    fake.hosts[HOST] = {"zz_other": "7"}
    sge_complex.ensure_present(qconf_for(fake), wanted(), {HOST: "2G"}, False, "root")
    assert fake.hosts[HOST] == {"zz_other": "7", "mem_requested": "2G"}
    # only the one value was sent
    assert fake.writes[-1] == ["-mattr", "exechost", "complex_values", "mem_requested=2G", HOST]


def test_unknown_host_fails_before_any_write():
    fake = FakeQconfCommand()
    with pytest.raises(sge_complex.RequestError, match=r"unknown exec host.* node999"):
        sge_complex.ensure_present(
            qconf_for(fake), wanted(), {HOST: "1G", "node999": "1G"}, False, "root"
        )
    assert fake.writes == []


def test_global_host_is_allowed():
    fake = FakeQconfCommand()
    result = sge_complex.ensure_present(qconf_for(fake), wanted(), {"global": "64G"}, False, "root")
    assert result["hosts_changed"] == ["global"]
    assert fake.hosts["global"] == {"mem_requested": "64G"}


def test_non_manager_fails_before_any_write():
    fake = FakeQconfCommand()
    with pytest.raises(
        sge_complex.RequestError,
        match=r"user 'sgetest' is not an SGE manager \(managers: root, sgeadmin\)",
    ):
        sge_complex.ensure_present(qconf_for(fake), wanted(), {}, False, "sgetest")
    assert fake.writes == []


def test_non_manager_may_run_when_nothing_changes():
    fake = FakeQconfCommand()
    sge_complex.ensure_present(qconf_for(fake), wanted(), {}, False, "root")
    result = sge_complex.ensure_present(qconf_for(fake), wanted(), {}, False, "sgetest")
    assert result["changed"] is False


def test_shortcut_clash_fails():
    fake = FakeQconfCommand()
    with pytest.raises(sge_complex.RequestError, match="already used by complex hostname"):
        sge_complex.ensure_present(
            qconf_for(fake), wanted("mem_requested h MEMORY <= YES YES 0 10"), {}, False, "root"
        )
    assert fake.writes == []


# --------------------------------------------------------------------------- ensure_absent


def test_absent_removes_and_is_idempotent():
    fake = FakeQconfCommand()
    qconf = qconf_for(fake)
    sge_complex.ensure_present(qconf, wanted(), {}, False, "root")
    others = [e for e in fake.complexes if e.name != "mem_requested"]

    result = sge_complex.ensure_absent(qconf, "mem_requested", False, "root")
    assert result["changed"] is True
    assert fake.complexes == others
    assert result["diff"] == {"before": f"complex: {SEGWAY_LINE}\n", "after": "complex: (absent)\n"}

    fake.writes.clear()
    assert sge_complex.ensure_absent(qconf, "mem_requested", False, "root")["changed"] is False
    assert fake.writes == []


def test_absent_in_check_mode_writes_nothing():
    fake = FakeQconfCommand()
    sge_complex.ensure_present(qconf_for(fake), wanted(), {}, False, "root")
    fake.writes.clear()
    result = sge_complex.ensure_absent(qconf_for(fake), "mem_requested", True, "root")
    assert result["changed"] is True
    assert fake.writes == []
    assert fake.line("mem_requested") == SEGWAY_LINE


def test_absent_while_referenced_lists_hosts_and_queues():
    fake = FakeQconfCommand(queues={"zz.q": "NONE", "all.q": f"NONE,[{HOST}=mem_requested=2G]"})
    qconf = qconf_for(fake)
    sge_complex.ensure_present(qconf, wanted(), {HOST: "1G", "global": "8G"}, False, "root")
    fake.writes.clear()

    with pytest.raises(sge_complex.RequestError) as caught:
        sge_complex.ensure_absent(qconf, "mem_requested", False, "root")
    message = str(caught.value)
    assert f"still referenced by exec host(s) global, {HOST} and queue(s) all.q" in message
    assert caught.value.details["references"] == {"hosts": ["global", HOST], "queues": ["all.q"]}
    assert fake.writes == []


# --------------------------------------------------------------------------- option checks


@pytest.mark.parametrize(
    ("line", "host_values", "state", "expected"),
    [
        ("mem_requested mr MEMORY <= YES YES 3X 10", {}, "present", "default='3X'"),
        (SEGWAY_LINE, {"n1": "-1G"}, "present", "host_values[n1]='-1G' is not a valid MEMORY"),
        (SEGWAY_LINE, {"n1": "3X"}, "present", "host_values[n1]='3X'"),
        ("m m STRING <= YES NO NONE 0", {}, "present", "type=STRING with relop=<="),
        ("m m BOOL <= YES NO 0 0", {}, "present", "type=BOOL with relop=<="),
        (SEGWAY_LINE, {"n1": "1G"}, "absent", "host_values cannot be used with state=absent"),
    ],
)
def test_request_errors(line, host_values, state, expected):
    errors = sge_complex.request_errors(wanted(line), host_values, state)
    assert any(expected in error for error in errors), errors


def test_request_errors_reports_every_problem_at_once():
    errors = sge_complex.request_errors(
        wanted("mem_requested mr MEMORY <= YES YES 3X 10"), {"n1": "-1G", "n2": "2G"}, "present"
    )
    assert len(errors) == 2


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "TRUE"), (False, "FALSE"), (4096, "4096"), (1.5, "1.5"), (" 4G ", "4G")],
)
def test_value_text(value, text):
    assert sge_complex.value_text(value) == text


def test_explain_unreachable_names_the_master(tmp_path):
    common = tmp_path / "default" / "common"
    common.mkdir(parents=True)
    (common / "act_qmaster").write_text("master01\n")
    qconf = sge.Qconf(None, "qconf", str(tmp_path), "default")
    error = sge.QconfError("unreachable", "`qconf -sc` failed (rc=1): commlib error")
    message = sge_complex.explain(error, qconf, wanted())
    assert message.startswith("sge_qmaster on 'master01' is unreachable")
    assert f"SGE_ROOT={tmp_path}, SGE_CELL=default" in message


def test_explain_consumable_host():
    qconf = sge.Qconf(None, "qconf", "/sge", "default")
    error = sge.QconfError("rejected", "`qconf -Mc /tmp/x` failed (rc=1): should end with")
    message = sge_complex.explain(error, qconf, wanted("m m INT <= YES HOST 0 0"))
    assert message.startswith("consumable=HOST was refused by this Grid Engine")


# --------------------------------------------------------------------------- main()


@pytest.fixture
def run_main(monkeypatch, call_main):
    """run_main(args, fake=None, user="root"): sge_complex.main()'s result (conftest.py)."""

    def runner(args, fake=None, user="root"):
        if fake is not None:
            monkeypatch.setattr(sge_complex, "open_qconf", lambda module: qconf_for(fake))
        monkeypatch.setattr(
            sge_complex.pwd, "getpwuid", lambda uid: type("pw", (), {"pw_name": user})()
        )
        return call_main(sge_complex.main, args)

    return runner


def test_main_defaults_are_segways_line(run_main, monkeypatch):
    fake = FakeQconfCommand()
    result = run_main({}, fake)
    assert result["failed"] is False and result["changed"] is True
    assert fake.line("mem_requested") == SEGWAY_LINE
    assert "diff" not in result
    json.dumps(result)


def test_main_diff_and_check_mode(run_main, monkeypatch):
    fake = FakeQconfCommand()
    result = run_main(
        {"_ansible_check_mode": True, "_ansible_diff": True, "host_values": {HOST: "4G"}},
        fake,
    )
    assert result["changed"] is True
    assert result["diff"]["after"].endswith(f"host {HOST}: mem_requested=4G\n")
    assert fake.writes == []


def test_main_bad_input_fails_before_qconf_is_looked_for(run_main, monkeypatch):
    def no_qconf(module):
        raise AssertionError("qconf must not be touched")

    monkeypatch.setattr(sge_complex, "open_qconf", no_qconf)
    result = run_main({"default": "3X", "host_values": {"n1": "-1G"}})
    assert result["failed"] is True
    assert "default='3X'" in result["msg"] and "host_values[n1]='-1G'" in result["msg"]
    assert len(result["errors"]) == 2


def test_main_reports_references(run_main, monkeypatch):
    fake = FakeQconfCommand()
    fake.complexes.append(wanted())
    fake.hosts[HOST] = {"mem_requested": "1G"}
    result = run_main({"state": "absent"}, fake)
    assert result["failed"] is True
    assert result["references"] == {"hosts": [HOST], "queues": []}
    assert fake.writes == []


def test_main_not_manager(run_main, monkeypatch):
    result = run_main({}, FakeQconfCommand(), user="nobody")
    assert result["failed"] is True
    assert "user 'nobody' is not an SGE manager" in result["msg"]


def test_main_qmaster_unreachable(run_main, monkeypatch):
    def unreachable(argv, environ_update=None):
        return 1, "", (FIXTURES / "qconf_error_unreachable.txt").read_text()

    monkeypatch.setattr(
        sge_complex,
        "open_qconf",
        lambda module: sge.Qconf(unreachable, "qconf", "/nonexistent", "default"),
    )
    result = run_main({})
    assert result["failed"] is True
    assert result["qconf_error"] == "unreachable"
    assert "is unreachable" in result["msg"]


def test_main_qconf_missing(run_main, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, **kw: None)
    result = run_main({"sge_root": str(tmp_path)})
    assert result["failed"] is True
    assert result["msg"].startswith(f"qconf not found: not in {tmp_path}/bin/<arch>/")


def test_main_cell_missing(run_main, monkeypatch, tmp_path):
    binary = tmp_path / "bin" / "lx-amd64" / "qconf"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    result = run_main({"sge_root": str(tmp_path), "sge_cell": "nocell"})
    assert result["failed"] is True
    assert result["msg"].startswith(f"no Grid Engine cell 'nocell' under sge_root='{tmp_path}'")


def test_main_sge_root_and_cell_from_environment(run_main, monkeypatch, tmp_path):
    monkeypatch.setenv("SGE_ROOT", str(tmp_path))
    monkeypatch.setenv("SGE_CELL", "envcell")
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, **kw: "/bin/true")
    result = run_main({})
    assert f"no Grid Engine cell 'envcell' under sge_root='{tmp_path}'" in result["msg"]


def test_documentation_header_examples_and_return():
    # That the documented options match ARGUMENT_SPEC: test_documentation.py.
    doc = yaml.safe_load(sge_complex.DOCUMENTATION)
    # sge_root and sge_cell are documented in the collection's doc fragment segway.cluster.sge
    assert "segway.cluster.sge" in doc["extends_documentation_fragment"]
    assert doc["version_added"] == "0.1.0"
    assert yaml.safe_load(sge_complex.EXAMPLES)
    assert set(yaml.safe_load(sge_complex.RETURN)) == {"complex", "hosts_changed", "references"}


def test_examples_are_valid_requests():
    tasks = yaml.safe_load(sge_complex.EXAMPLES)
    assert len(tasks) == 7
    for task in tasks:
        args = dict(task["segway.cluster.sge_complex"] or {})
        params = {name: spec.get("default") for name, spec in sge_complex.ARGUMENT_SPEC.items()}
        params.update(args)
        host_values = params["host_values"]
        if isinstance(host_values, str):  # a template, rendered at run time
            host_values = {}
        entry = sge.make_complex(**{field: params[field] for field in sge.COMPLEX_FIELDS})
        values = {host: sge_complex.value_text(v) for host, v in (host_values or {}).items()}
        assert sge_complex.request_errors(entry, values, params["state"]) == [], task["name"]
