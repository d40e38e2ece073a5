"""playbooks/balance.yml reads the spot watchers' notices and hands them to the pass.

The play of balance.yml that reads /var/lib/segway-spot-watch/state.json on the compute
nodes is taken from the playbook itself and run for real (ansible-playbook, connection
local, nothing outside a temporary directory touched): only the file's path is pointed
into tmp_path, per node. The state files are written by the watcher's own save_state
(roles/sge/files/segway_spot_watch.py, imported by path), so the playbook reads what the
watcher writes. A second play evaluates, on the master, the very `noticed_hosts`
expression balance.yml gives segway.cluster.sge_autoscale. The contract: one task over
all compute nodes (no loop), nodes with a handled notice are named, and a node that
does not answer, has no file, or has one that is not the watcher's is skipped without
failing the run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BALANCE = REPO / "playbooks" / "balance.yml"
WATCHER = REPO / "roles" / "sge" / "files" / "segway_spot_watch.py"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
READ_PLAY = "Read the spot watchers' notices on the compute nodes"
STATE_PATH = "/var/lib/segway-spot-watch/state.json"


def load_watcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("segway_spot_watch_for_balance", WATCHER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def balance_plays() -> list[dict]:
    return yaml.safe_load(BALANCE.read_text())


def read_play() -> dict:
    (play,) = [play for play in balance_plays() if play.get("name") == READ_PLAY]
    return play


def module_task() -> dict:
    for play in balance_plays():
        for task in play.get("tasks", []):
            if "segway.cluster.sge_autoscale" in task:
                return task["segway.cluster.sge_autoscale"]
    raise AssertionError("balance.yml runs no segway.cluster.sge_autoscale task")


def tasks_of(play: dict) -> list[dict]:
    """Every task of a play, those in blocks and rescues included."""
    found = []
    pending = list(play.get("tasks", []))
    while pending:
        task = pending.pop(0)
        found.append(task)
        for key in ("block", "rescue", "always"):
            pending.extend(task.get(key, []))
    return found


def notice(kind: str, action: str, outcome: str) -> dict[str, str]:
    return {
        "kind": kind,
        "action": action,
        "time": "2027-01-15T07:58:00Z",
        "outcome": outcome,
        "at": "2027-01-15T07:56:03+00:00",
    }


@pytest.fixture(scope="module")
def passed(tmp_path_factory) -> dict:
    """One run over seven compute nodes; the master's noticed_hosts and the run's output."""
    tmp = tmp_path_factory.mktemp("balance_notices")
    watcher = load_watcher()
    states = tmp / "states"
    states.mkdir()
    # node001: a rebalance recommendation handled (the gap: EC2 may never take it).
    watcher.save_state(
        str(states / "node001.json"),
        {"rebalance/rebalance/2027-01-15T07:58:00Z": notice("rebalance", "rebalance", "done")},
    )
    # node002: no watcher, or no notice yet: no file at all.
    # node003: a file that is not JSON.
    (states / "node003.json").write_text("{half a state")
    # node004: the watcher's file with no notice handled.
    watcher.save_state(str(states / "node004.json"), {})
    # node005: does not answer (nothing listens on port 1 of this machine).
    # node006: another version of the file.
    (states / "node006.json").write_text(json.dumps({"version": 2, "handled": {"x": {}}}))
    # node007: an interruption whose commands kept failing past its time (gave-up):
    # the watcher ran qmod -d for it too; the pass also wants the queue disabled.
    watcher.save_state(
        str(states / "node007.json"),
        {"spot-interruption/terminate/t": notice("spot-interruption", "terminate", "gave-up")},
    )

    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    compute = {
        f"node00{number}": {**local, "balance_test_state": str(states / f"node00{number}.json")}
        for number in range(1, 8)
    }
    compute["node005"] = {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": 1,
        "ansible_user": "nobody",
        "balance_test_state": STATE_PATH,
    }
    inventory = {"master": {"hosts": {"master": local}}, "compute": {"hosts": compute}}
    (tmp / "inventory.json").write_text(json.dumps(inventory))

    play = read_play()
    (slurp,) = [task for task in tasks_of(play) if "ansible.builtin.slurp" in task]
    assert slurp["ansible.builtin.slurp"]["src"] == STATE_PATH
    slurp["ansible.builtin.slurp"]["src"] = "{{ balance_test_state }}"
    out = tmp / "noticed.json"
    report = {
        "name": "Evaluate balance.yml's noticed_hosts on the master",
        "hosts": "master",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Write noticed_hosts",
                "ansible.builtin.copy": {
                    "dest": str(out),
                    "content": "{{ balance_noticed_hosts | to_json }}",
                    "mode": "0644",
                },
                "vars": {"balance_noticed_hosts": module_task()["noticed_hosts"]},
            }
        ],
    }
    (tmp / "notices.yml").write_text(yaml.safe_dump([play, report], sort_keys=False))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False")
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "inventory.json"), str(tmp / "notices.yml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    noticed = json.loads(out.read_text()) if out.exists() else None
    return {"rc": result.returncode, "out": result.stdout + result.stderr, "noticed": noticed}


def test_nodes_with_a_handled_notice_are_named(passed):
    assert passed["noticed"] == ["node001", "node007"], passed["out"]


def test_nodes_that_fail_or_do_not_answer_do_not_fail_the_run(passed):
    assert passed["rc"] == 0, passed["out"]
    recap = passed["out"].rpartition("PLAY RECAP")[2]
    assert "failed=0" in recap and "failed=1" not in recap, recap
    lines = {line.split()[0]: line for line in recap.splitlines() if line.startswith("node")}
    # node005 did not answer: skipped; node003's file is no JSON: rescued.
    assert "unreachable=0" in lines["node005"] and "ignored=1" in lines["node005"], recap
    assert "rescued=1" in lines["node003"], recap


def test_one_task_over_all_compute_nodes_at_once():
    play = read_play()
    assert play["hosts"] == "compute"
    assert play["ignore_unreachable"] is True
    assert play["gather_facts"] is False
    assert not any(key.startswith("loop") or key.startswith("with_") for key in play)
    for task in tasks_of(play):
        assert not [key for key in task if key == "loop" or key.startswith("with_")], task
        assert "run_once" not in task and "throttle" not in task, task
    assert "serial" not in play and "throttle" not in play
    # Read in dry runs too (slurp changes nothing), and handed to the module.
    assert all("check_mode" not in task for task in tasks_of(play))
    assert "balance_noticed" in module_task()["noticed_hosts"]
