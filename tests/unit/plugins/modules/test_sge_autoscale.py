"""Unit tests of plugins/modules/sge_autoscale.py, with Grid Engine faked at run_command.

`FakeGridEngine` plays qstat, qhost and qconf for the module: it answers with the XML and
text recorded from a real Son of Grid Engine 8.1.9 (tests/unit/fixtures/sge_autoscale/,
whose capture.sh says which state each file shows). `main()` runs for real on top of it,
with a Grid Engine root in tmp_path (bin/lx-amd64/q*, the cell's act_qmaster), so option
checking, the state file, the log and check mode are the module's own. The integration
test (tests/integration/sge_complex/test_sge_autoscale_live.py) runs it on a real qmaster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.segway.cluster.plugins.modules import sge_autoscale

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sge_autoscale"
G = 1024**3
M = 1024**2
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
# node002 of the recordings: the lost host, whose entry says 15872M.
NODE002_SE = "hostname node002\nload_scaling NONE\ncomplex_values mem_requested=15872M\n"
TYPES = {
    "m5.large": {"vcpus": 2, "memory_mib": 8192},
    "r5.large": {"vcpus": 2, "memory_mib": 16384},
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class FakeGridEngine:
    """A run_command that answers qstat, qhost, qconf -se and util/arch from recordings."""

    def __init__(self, qstat: str = "qstat_empty.xml", qhost: str = "qhost_idle.xml") -> None:
        self.qstat = qstat
        self.qhost = qhost
        self.calls: list[list[str]] = []
        self.environ: list[dict] = []
        self.fail: tuple[int, str] | None = None

    def __call__(self, argv, environ_update=None, **kwargs):
        self.calls.append(list(argv))
        self.environ.append(dict(environ_update or {}))
        name = Path(argv[0]).name
        if name == "arch":
            return 0, "lx-amd64\n", ""
        if self.fail is not None:
            return self.fail[0], "", self.fail[1]
        answers = {
            ("qstat", "-xml -r -s p -u *"): lambda: fixture(self.qstat),
            ("qhost", "-xml -F mem_requested -q"): lambda: fixture(self.qhost),
            ("qconf", "-se vm"): lambda: fixture("qconf_se_vm.txt"),
            ("qconf", "-se node002"): lambda: NODE002_SE,
        }
        answer = answers.get((name, " ".join(argv[1:])))
        if answer is None:
            return 1, "", f"fake: unexpected {' '.join(argv)}\n"
        return 0, answer(), ""

    def commands(self) -> list[str]:
        return [Path(argv[0]).name for argv in self.calls if Path(argv[0]).name != "arch"]


@pytest.fixture
def sge_root(tmp_path: Path) -> Path:
    """A Grid Engine root whose qmaster is `master` (so `vm` is a compute node)."""
    root = tmp_path / "sge"
    for name in ("qstat", "qhost", "qconf"):
        binary = root / "bin" / "lx-amd64" / name
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\nexit 99\n")
        binary.chmod(0o755)
    common = root / "default" / "common"
    common.mkdir(parents=True)
    (common / "act_qmaster").write_text("master\n")
    return root


@pytest.fixture
def run(monkeypatch, tmp_path, sge_root, call_main):
    """run(args, fake, now=..., check=..., diff=...) -> the module's result dict."""

    def runner(args, fake=None, *, now=NOW, check=False, diff=False):
        fake = fake or FakeGridEngine()
        monkeypatch.setattr(
            basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw)
        )
        monkeypatch.setattr(sge_autoscale.time, "time", lambda: now)
        params = {
            "sge_root": str(sge_root),
            "sge_cell": "default",
            "state_path": str(tmp_path / "state" / "state.json"),
            "log_path": str(tmp_path / "log" / "autoscale.log"),
            "instance_types": TYPES,
            "_ansible_check_mode": check,
            "_ansible_diff": diff,
            **args,
        }
        return call_main(sge_autoscale.main, params)

    return runner


def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.json"


def log_file(tmp_path: Path) -> Path:
    return tmp_path / "log" / "autoscale.log"


def log_lines(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_file(tmp_path).read_text().splitlines()]


# --------------------------------------------------------------------------- one pass


def test_check_mode_plans_and_writes_nothing(run, tmp_path):
    fake = FakeGridEngine("qstat_pending.xml", "qhost_busy.xml")
    result = run({"policy": {"max_nodes": 4}}, fake, check=True, diff=True)

    assert result["failed"] is False
    assert result["changed"] is False
    assert not state_file(tmp_path).parent.exists()
    assert not log_file(tmp_path).parent.exists()
    # vm is busy and node002 lost: new nodes for the memory, the 64G job launches nothing
    plan = result["plan"]
    assert plan["actions"] == [{"action": "launch", "count": 3, "instance_type": "m5.large"}]
    assert [job["job"] for job in plan["unplaceable"]] == ["24"]
    assert plan["excluded_hosts"] == [{"host": "node002", "reason": "unreachable (no load report)"}]
    assert all("max_nodes=4" in job["reason"] for job in plan["waiting"])
    assert result["summary"] == plan["summary"]
    assert result["summary"].endswith("actions: launch 3 x m5.large")
    assert result["lost_hosts"] == ["node002"]
    assert result["hosts"]["fixed"] == ["master"]
    assert (result["pending"]["jobs"], result["pending"]["slots"]) == (20, 22)
    assert {job["state"] for job in result["pending"]["skipped"]} == {"Eqw", "hqw"}
    # what would have been written
    assert result["diff"]["before"] == ""
    assert json.loads(result["diff"]["after"]) == result["state"]
    assert result["log_record"]["actions"] == plan["actions"]
    assert fake.commands() == ["qstat", "qhost", "qconf", "qconf"]  # -se vm, -se node002
    assert all(env == {"SGE_ROOT": env["SGE_ROOT"], "SGE_CELL": "default"} for env in fake.environ)
    json.dumps(result)


def test_pass_writes_state_and_one_log_line(run, tmp_path):
    fake = FakeGridEngine("qstat_pending.xml", "qhost_busy.xml")
    result = run({}, fake)

    assert result["changed"] is True
    assert "diff" not in result
    assert json.loads(state_file(tmp_path).read_text()) == result["state"]
    (line,) = log_lines(tmp_path)
    assert line == result["log_record"]
    assert line["time"] == "2027-01-15T08:00:00Z"
    assert line["pending_jobs"] == 20
    assert line["pending_memory"] == result["plan"]["counts"]["pending_memory"]
    assert (line["free_slots"], line["free_memory"]) == (0, 3 * G)  # vm: 2 of 2 slots, 3G left
    assert (line["slots_total"], line["slots_used"]) == (2, 2)
    assert line["nodes"] == {
        "listed": 2,
        "busy": 1,
        "idle": 0,
        "fixed": 0,
        "draining": 0,
        "noticed": 0,
        "excluded": 1,
        "in_flight": 0,
        "new": 9,
    }
    assert line["noticed_hosts"] == []
    assert (line["waiting"], line["unplaceable"]) == (3, 1)
    assert line["actions"] == [{"action": "launch", "count": 9, "instance_type": "m5.large"}]
    assert line["summary"] == result["summary"]


def test_idle_bookkeeping_across_passes_then_drain_and_remove(run, tmp_path):
    policy = {"min_nodes": 0, "idle_minutes": 10}
    first = run({"policy": policy}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"))
    assert first["state"]["idle_since"] == {"vm": NOW}
    assert first["plan"]["actions"] == []  # idle for 0 s

    # Nine minutes later: still idle, clock kept, not drained yet.
    second = run(
        {"policy": policy}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"), now=NOW + 540
    )
    assert second["state"]["idle_since"] == {"vm": NOW}
    assert second["plan"]["actions"] == []

    # Past ten minutes: drained, and the drain is recorded with its start.
    third = run(
        {"policy": policy}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"), now=NOW + 660
    )
    assert third["plan"]["actions"] == [{"action": "drain", "host": "vm"}]
    assert third["state"]["draining"] == {"vm": NOW + 660}
    assert third["state"]["idle_since"] == {"vm": NOW}

    # The caller disabled all.q@vm. A pass 10 s later leaves it draining: the drain has
    # not settled (drain_settle_seconds, 30 by default), a job dispatched as the queue
    # was disabled might not show yet.
    early = run(
        {"policy": policy},
        FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml"),
        now=NOW + 670,
    )
    assert early["plan"]["actions"] == []
    assert early["state"]["draining"] == {"vm": NOW + 660}

    # Past the settling time, still idle and disabled: removed, keeping the drain's start.
    fourth = run(
        {"policy": policy},
        FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml"),
        now=NOW + 700,
    )
    assert fourth["plan"]["actions"] == [{"action": "remove", "host": "vm"}]
    assert fourth["state"]["draining"] == {"vm": NOW + 660}
    assert fourth["hosts"]["draining"] == 1

    assert [line["summary"].partition("actions: ")[2] for line in log_lines(tmp_path)] == [
        "none",
        "none",
        "drain vm",
        "none",
        "remove vm",
    ]


def test_busy_host_loses_its_idle_since(run, tmp_path):
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(json.dumps({"version": 1, "idle_since": {"vm": NOW - 5000}}))
    result = run({}, FakeGridEngine("qstat_empty.xml", "qhost_busy.xml"))
    assert result["state"]["idle_since"] == {}
    assert result["plan"]["actions"] == []


def test_hosts_gone_from_qhost_leave_the_state(run, tmp_path):
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(
        json.dumps({"version": 1, "idle_since": {"node009": 1.0}, "draining": {"node009": 2.0}})
    )
    result = run({}, FakeGridEngine())
    assert result["state"]["idle_since"] == {"vm": NOW}
    assert result["state"]["draining"] == {}


def test_drain_not_in_effect_is_forgotten(run, tmp_path):
    """A recorded drain whose queue is not disabled: the host is usable (and idle) again."""
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(
        json.dumps({"version": 1, "idle_since": {"vm": NOW - 60}, "draining": {"vm": NOW - 30}})
    )
    result = run({}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"))
    assert result["state"]["draining"] == {}
    assert result["state"]["idle_since"] == {"vm": NOW - 60}
    assert result["hosts"]["usable"] == 1
    assert result["plan"]["actions"] == []


def test_disabled_host_not_drained_by_the_autoscaler_is_left_alone(run):
    result = run({}, FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml"))
    assert result["plan"]["actions"] == []
    assert result["plan"]["excluded_hosts"][-1]["host"] == "vm"
    assert result["state"]["idle_since"] == {}


def test_draining_host_a_job_needs_is_enabled_and_forgotten(run, tmp_path):
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(json.dumps({"version": 1, "draining": {"vm": NOW - 30}}))
    # vm (disabled, idle, 6G free) is where the pending 500M..2.5G jobs fit first
    result = run({}, FakeGridEngine("qstat_pending.xml", "qhost_idle_disabled.xml"))
    assert result["plan"]["actions"][-1] == {
        "action": "enable",
        "host": "vm",
        "reason": "pending jobs fit there",
    }
    assert result["state"]["draining"] == {}


def test_qmaster_host_is_fixed(run, sge_root):
    (sge_root / "default" / "common" / "act_qmaster").write_text("vm\n")
    result = run(
        {"policy": {"idle_minutes": 0}}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml")
    )
    assert result["hosts"]["fixed"] == ["vm"]
    assert result["plan"]["actions"] == []
    assert result["log_record"]["nodes"]["fixed"] == 1


def test_fixed_hosts_are_never_drained(run):
    result = run(
        {"policy": {"idle_minutes": 0}, "fixed_hosts": ["vm"]},
        FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"),
    )
    assert result["plan"]["actions"] == []
    assert result["hosts"]["fixed"] == ["master", "vm"]


def test_compute_host_idle_long_enough_is_drained(run):
    result = run(
        {"policy": {"idle_minutes": 0}}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml")
    )
    assert result["plan"]["actions"] == [{"action": "drain", "host": "vm"}]


@pytest.mark.parametrize(("count", "jobs"), [(True, 1), (False, 0)])
def test_rescheduled_jobs_count_by_default(run, count, jobs):
    fake = FakeGridEngine("qstat_rescheduled.xml", "qhost_disabled.xml")
    result = run({"count_rescheduled": count}, fake, check=True)
    rescheduled = [job for job in result["pending"]["skipped"] if job["state"] == "Rq"]
    assert len(rescheduled) == 1 - jobs
    labels = {item["job"] for item in result["plan"]["placements"]}
    labels |= {item["job"] for item in result["plan"]["unplaceable"]}
    assert ("17" in labels) is count  # run_2G, rescheduled by qmod -rj


def test_in_flight_option_takes_jobs_and_is_kept_until_usable(run, tmp_path):
    fake = FakeGridEngine("qstat_pending.xml", "qhost_busy.xml")
    args = {
        "policy": {"max_nodes": 3},
        "in_flight": ["node003", {"name": "node004", "instance_type": "m5.large"}],
        "instance_types": {"m5.large": {"vcpus": 2, "memory_mib": 8192}},
    }
    result = run(args, fake)
    assert result["plan"]["counts"]["in_flight"] == 2
    assert {item["target"] for item in result["plan"]["placements"]} >= {"node003", "node004"}
    assert result["plan"]["actions"] == []  # vm + 2 in flight = max_nodes
    assert result["state"]["in_flight"] == {
        "node003": {"instance_type": "m5.large", "since": NOW},
        "node004": {"instance_type": "m5.large", "since": NOW},
    }
    # Not given: the state's nodes in flight are used, with their first time.
    again = run({"policy": {"max_nodes": 3}}, fake, now=NOW + 60)
    assert again["plan"]["counts"]["in_flight"] == 2
    assert again["state"]["in_flight"]["node003"]["since"] == NOW
    # Given as []: forgotten.
    cleared = run({"in_flight": []}, fake, now=NOW + 120)
    assert cleared["state"]["in_flight"] == {}


def test_in_flight_node_listed_as_usable_host_drops_out(run, tmp_path):
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(
        json.dumps(
            {
                "version": 1,
                "in_flight": {
                    "vm": {"instance_type": "m5.large", "since": NOW - 90},
                    "node002": {"instance_type": "m5.large", "since": NOW - 90},
                },
            }
        )
    )
    result = run({}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"))
    # vm reports and is usable; node002 is listed but has never reported: still in flight
    assert result["state"]["in_flight"] == {
        "node002": {"instance_type": "m5.large", "since": NOW - 90}
    }


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"policy": {"min_nodes": -1}},
            "policy.min_nodes=-1 is not allowed: use a whole number >= 0",
        ),
        (
            {"policy": {"min_nodes": 3, "max_nodes": 2}},
            "policy.max_nodes=2 is not allowed: use a whole number >= policy.min_nodes (3)",
        ),
        (
            {"policy": {"max_launch_per_pass": -2}},
            "policy.max_launch_per_pass=-2 is not allowed: use a whole number >= 0",
        ),
        (
            {"policy": {"idle_minutes": -5}},
            "policy.idle_minutes=-5.0 is not allowed: use a number of minutes >= 0",
        ),
        (
            {"policy": {"drain_settle_seconds": -1}},
            "policy.drain_settle_seconds=-1.0 is not allowed: use a number of seconds >= 0",
        ),
        (
            {"policy": {"mem_reserve": "lots"}},
            "policy.mem_reserve='lots' is not allowed: use an SGE memory value such as 512M",
        ),
        ({"instance_types": {}}, "instance_types={} is not allowed: name at least one type"),
        (
            {"instance_types": {"t": {"vcpus": 0, "memory_mib": 1024}}},
            "instance_types[t].vcpus=0 is not allowed: use a whole number >= 1",
        ),
        (
            {"instance_types": {"t": {"vcpus": 2, "memory_mib": "lots"}}},
            "instance_types[t].memory_mib='lots' is not allowed: use a whole number of MiB >= 1",
        ),
        (
            {"instance_types": {"t": {"vcpus": 2, "memory_mib": 1024, "price": -1}}},
            "instance_types[t].price=-1 is not allowed: use a number >= 0",
        ),
        (
            {"instance_types": {"t": {"vcpus": 2, "memory_mib": 1024, "mem": 3}}},
            "instance_types[t] has unknown key(s) mem: allowed are vcpus, memory_mib, price",
        ),
        (
            {"instance_types": {"t": [2, 1024]}},
            "instance_types[t]=[2, 1024] is not allowed: use a dict {vcpus, memory_mib, price}",
        ),
        (
            {"default_memory": "3X"},
            "default_memory='3X' is not allowed: use an SGE memory value such as 0, 2G or 500M",
        ),
        (
            {"in_flight": ["node003"]},
            "in_flight[0]='node003' needs an instance_type: instance_types has 2 types "
            "(m5.large, r5.large)",
        ),
        (
            {"in_flight": [{"name": "node003", "instance_type": "c5.large"}]},
            "in_flight[0].instance_type='c5.large' is not one of instance_types: "
            "m5.large, r5.large",
        ),
        (
            {"in_flight": [7]},
            "in_flight[0]=7 is not allowed: use a node name or {name, instance_type}",
        ),
        (
            {"state_path": "state.json"},
            "state_path='state.json' is not allowed: use an absolute path",
        ),
    ],
)
def test_bad_input_fails_before_any_command(run, tmp_path, args, message):
    fake = FakeGridEngine()
    result = run(args, fake)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake.commands() == []
    assert not state_file(tmp_path).parent.exists()


def test_every_bad_input_is_reported_at_once(run):
    result = run({"policy": {"min_nodes": -1, "mem_reserve": "x"}, "default_memory": "y"})
    assert len(result["errors"]) == 3
    assert result["msg"] == "; ".join(result["errors"])


def test_option_types_are_checked_by_ansible(run):
    result = run({"policy": {"max_nodes": "many"}})
    assert result["failed"] is True
    assert "max_nodes" in result["msg"] and "many" in result["msg"]


def test_state_file_that_is_not_ours_fails_and_is_kept(run, tmp_path):
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text("{not json")
    result = run({}, FakeGridEngine())
    assert result["failed"] is True
    assert result["msg"].startswith(f"state_path='{state_file(tmp_path)}' is not an autoscaler")
    assert "qmod -e" in result["msg"]
    assert state_file(tmp_path).read_text() == "{not json"
    assert not log_file(tmp_path).exists()


def test_qmaster_unreachable(run, tmp_path):
    fake = FakeGridEngine()
    fake.fail = (1, "error: commlib error: got select error (Connection refused)\n")
    result = run({}, fake)
    assert result["failed"] is True
    assert result["msg"].startswith("sge_qmaster on 'master' is unreachable")
    assert not state_file(tmp_path).parent.exists()


def test_missing_cell(run, sge_root):
    result = run({"sge_cell": "nocell"})
    assert result["failed"] is True
    assert result["msg"].startswith(f"no Grid Engine cell 'nocell' under sge_root='{sge_root}'")


def test_unwritable_log_fails_with_the_reason(run, tmp_path):
    log_file(tmp_path).mkdir(parents=True)  # a directory where the file should be
    result = run({}, FakeGridEngine())
    assert result["failed"] is True
    assert "is a directory" in result["msg"]


# --------------------------------------------------------------------------- documentation


def test_documentation_uses_the_shared_sge_options():
    # That the documented options match ARGUMENT_SPEC: test_documentation.py.
    doc = yaml.safe_load(sge_autoscale.DOCUMENTATION)
    assert "segway.cluster.sge" in doc["extends_documentation_fragment"]
    assert {"sge_root", "sge_cell"} <= set(sge_autoscale.ARGUMENT_SPEC)
    assert set(doc["options"]["policy"]["suboptions"]) == set(
        sge_autoscale.ARGUMENT_SPEC["policy"]["options"]
    )
    returned = yaml.safe_load(sge_autoscale.RETURN)
    assert set(returned) == {
        "plan",
        "summary",
        "pending",
        "hosts",
        "lost_hosts",
        "state",
        "log_record",
    }


def test_examples_are_valid_requests():
    tasks = yaml.safe_load(sge_autoscale.EXAMPLES)
    for task in tasks:
        args = task.get("segway.cluster.sge_autoscale")
        if args is None:
            continue
        params = {name: spec.get("default") for name, spec in sge_autoscale.ARGUMENT_SPEC.items()}
        params["policy"] = {
            name: spec["default"]
            for name, spec in sge_autoscale.ARGUMENT_SPEC["policy"]["options"].items()
        }
        params["policy"].update(args.pop("policy", {}))
        params.update(args)
        assert sge_autoscale.request_errors(params) == [], task["name"]


# --------------------------------------------------------------------------- gone hosts


def test_gone_host_takes_no_job_and_is_reported_lost(run):
    """vm still reports load (Grid Engine has not missed it yet), but the caller knows its
    node is gone: pending jobs go to new nodes, not onto vm, and vm is listed as lost."""
    fake = FakeGridEngine("qstat_pending.xml", "qhost_idle.xml")
    alive = run({}, fake, check=True)
    assert any(item["target"] == "vm" for item in alive["plan"]["placements"]), alive["plan"]
    assert alive["lost_hosts"] == ["node002"]  # no load report in the recording

    gone = run({"gone_hosts": ["vm", "node404"]}, fake, check=True)
    assert not any(item["target"] == "vm" for item in gone["plan"]["placements"]), gone["plan"]
    assert {"host": "vm", "reason": "gone: no running container or instance"} in gone["plan"][
        "excluded_hosts"
    ]
    assert gone["lost_hosts"] == ["node002", "vm"]  # node404 is no exec host: ignored
    assert gone["plan"]["counts"]["hosts_usable"] == 0
    assert all(action["action"] != "drain" for action in gone["plan"]["actions"])


# --------------------------------------------------------------------------- spot notices


def test_noticed_host_is_removed_one_settled_pass_after_it_was_first_seen(run, tmp_path):
    """vm disabled and idle, as the spot watcher leaves a node after a rebalance
    recommendation: the first pass records the notice (the watcher's qmod -d was the
    drain), the first pass drain_settle_seconds later removes it, without idle_minutes,
    even when vm's state file could not be read that time."""
    fake = FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml")
    policy = {"idle_minutes": 60, "drain_settle_seconds": 30}
    first = run({"policy": policy, "noticed_hosts": ["vm"]}, fake)
    assert first["plan"]["actions"] == []
    assert first["plan"]["noticed_hosts"] == ["vm"]
    assert first["state"]["noticed"] == {"vm": NOW}
    assert first["state"]["draining"] == {}
    assert first["hosts"]["noticed"] == ["vm"]
    assert (first["hosts"]["draining"], first["hosts"]["excluded"]) == (1, 1)  # node002 lost
    assert "1 draining (spot notice: vm)" in first["summary"]

    second = run({"policy": policy}, fake, now=NOW + 60)  # vm did not answer this time
    assert second["plan"]["actions"] == [
        {"action": "remove", "host": "vm", "reason": "spot notice"}
    ]
    assert second["state"]["noticed"] == {"vm": NOW}
    assert second["summary"].endswith("actions: remove vm (spot notice)")

    lines = log_lines(tmp_path)
    assert [line["noticed_hosts"] for line in lines] == [["vm"], ["vm"]]
    assert [line["nodes"]["noticed"] for line in lines] == [1, 1]
    assert [line["nodes"]["draining"] for line in lines] == [1, 1]
    assert lines[1]["actions"] == second["plan"]["actions"]

    # A noticed host Grid Engine no longer lists (removed: node009 here) is forgotten;
    # and vm, neither named nor recorded any more, is a disabled host like any other.
    state = json.loads(state_file(tmp_path).read_text())
    state_file(tmp_path).write_text(json.dumps({**state, "noticed": {"node009": NOW}}))
    third = run({"policy": policy, "noticed_hosts": ["node009"]}, fake, now=NOW + 120)
    assert third["state"]["noticed"] == {}
    assert third["plan"]["actions"] == []


def test_noticed_busy_host_keeps_its_job_and_takes_none(run, tmp_path):
    """vm disabled with its two jobs still running (they lack the rerun flag, say): no
    pending job goes there, it is not enabled again, and not removed."""
    fake = FakeGridEngine("qstat_pending.xml", "qhost_disabled.xml")
    result = run({"noticed_hosts": ["vm"]}, fake, now=NOW + 3600)
    actions = result["plan"]["actions"]
    assert {action["action"] for action in actions} == {"launch"}
    assert not any(item["target"] == "vm" for item in result["plan"]["placements"])
    assert result["state"]["noticed"] == {"vm": NOW + 3600}
    assert result["log_record"]["nodes"]["noticed"] == 1


def test_check_mode_plans_a_noticed_removal_and_writes_nothing(run, tmp_path):
    fake = FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml")
    args = {"noticed_hosts": ["vm"], "policy": {"drain_settle_seconds": 0}}
    result = run(args, fake, check=True, diff=True)
    assert result["changed"] is False
    assert result["plan"]["actions"] == [
        {"action": "remove", "host": "vm", "reason": "spot notice"}
    ]
    assert json.loads(result["diff"]["after"])["noticed"] == {"vm": NOW}
    assert not state_file(tmp_path).parent.exists()
    assert not log_file(tmp_path).parent.exists()


@pytest.mark.parametrize(
    ("names", "noticed"),
    [
        (["vm"], ["vm"]),
        (["vm.eu-west-1.compute.internal"], ["vm"]),  # a name with its domain
        (["node404", " "], []),  # not listed; blank names are refused, see below
        ([], []),
    ],
)
def test_noticed_names_match_listed_hosts(run, names, noticed):
    fake = FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml")
    args = {"noticed_hosts": [name for name in names if name.strip()]}
    assert run(args, fake, check=True)["plan"]["noticed_hosts"] == noticed


def test_noticed_hosts_defaults_to_none(run):
    assert sge_autoscale.ARGUMENT_SPEC["noticed_hosts"] == {
        "type": "list",
        "elements": "str",
        "default": [],
    }
    result = run({}, FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml"), check=True)
    assert result["plan"]["noticed_hosts"] == []
    assert result["state"]["noticed"] == {}


def test_blank_noticed_host_fails_before_any_command(run, tmp_path):
    fake = FakeGridEngine()
    result = run({"noticed_hosts": ["vm", ""]}, fake)
    assert result["failed"] is True
    assert result["msg"] == "noticed_hosts[1]='' is not allowed: use a host name"
    assert fake.commands() == []


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        # A disabled host with no notice is an admin's: left alone, as before.
        ({}, "disabled (queue state d)"),
        # A gone node (no container or instance) takes the lost-node path instead.
        ({"noticed_hosts": ["vm"], "gone_hosts": ["vm"]}, "gone: no running container or instance"),
        # The master is never removed.
        ({"noticed_hosts": ["vm"], "fixed_hosts": ["vm"]}, "disabled (queue state d)"),
    ],
)
def test_notice_ignored_for_admin_gone_and_fixed_hosts(run, args, reason):
    fake = FakeGridEngine("qstat_empty.xml", "qhost_idle_disabled.xml")
    result = run({"policy": {"drain_settle_seconds": 0}, **args}, fake)
    assert result["plan"]["actions"] == []
    assert {"host": "vm", "reason": reason} in result["plan"]["excluded_hosts"]
    assert result["state"]["noticed"] == {}


def test_notice_is_forgotten_once_the_host_is_enabled_again(run, tmp_path):
    """Someone ran qmod -e on vm after the notice: it is an ordinary host again."""
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(json.dumps({"version": 1, "noticed": {"vm": NOW - 600}}))
    result = run({}, FakeGridEngine("qstat_empty.xml", "qhost_idle.xml"))
    assert result["state"]["noticed"] == {}
    assert result["hosts"]["usable"] == 1
    assert result["plan"]["actions"] == []


def test_state_file_with_a_bad_noticed_map_fails(run, tmp_path):
    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_text(json.dumps({"version": 1, "noticed": {"vm": "soon"}}))
    result = run({}, FakeGridEngine())
    assert result["failed"] is True
    assert "noticed is not a map of host -> epoch seconds" in result["msg"]
