"""Bad home-volume and login-key input to playbooks/configure.yml fails before any change.

Like tests/playbooks/test_bad_input.py: the real playbook runs against this machine
(connection local), and the validation play must stop it before the first task that
could change anything, with a message naming the variable, the value and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "configure.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
INVENTORY = """
master:
  hosts:
    master: {ansible_connection: local}
compute:
  hosts:
    node001: {ansible_connection: local}
"""


def home(**extra) -> dict:
    return {
        "name": "home",
        "device": "/dev/segway-test-absent",
        "mount_point": "/home",
        "format": "if_blank",
        "copy_existing": True,
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"ebs_mount_volumes": [home(copy_existing="maybe")]},
            ["copy_existing", "maybe", "bool"],
            id="copy-existing-not-bool",
        ),
        pytest.param(
            {"ebs_mount_volumes": [home(owner="no-such-user-hv")]},
            [
                "ebs_mount_volumes entry home: owner 'no-such-user-hv' does not exist",
                "ebs_mount_owners_created_later (sgeadmin)",
            ],
            id="owner-missing",
        ),
        pytest.param(
            {"ebs_mount_volumes": [home(group="bad group")]},
            ["ebs_mount_volumes entry home: group 'bad group' must be a user or group name"],
            id="group-bad-name",
        ),
        pytest.param(
            {"common_login_user": "Bad User"},
            ["common_login_user 'Bad User' is not allowed", "a POSIX user name"],
            id="login-user-bad-name",
        ),
        pytest.param(
            {"common_login_user": "no-such-user-hv"},
            ["common_login_user 'no-such-user-hv' does not exist", "ansible_user"],
            id="login-user-missing",
        ),
    ],
)
def test_bad_input_fails_before_any_change(tmp_path: Path, extra: dict, expected: list) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOK), "-e", json.dumps(extra)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, output
    for text in expected:
        assert text in output, f"{text!r} not in output:\n{output}"
    assert re.search(r"changed=[1-9]", output) is None, output
    # Stopped in the validation play: the configure play never started.
    assert "PLAY [Configure the cluster's nodes]" not in output
