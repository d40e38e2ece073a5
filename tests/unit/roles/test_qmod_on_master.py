"""roles/sge/files/segway-qmod-on-master: what the spot watcher runs qmod on the master with.

The script runs for real under /bin/sh; only `ssh` is a stand-in on PATH that records
its arguments, so the tests see exactly the command the master's shell would get.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "sge" / "files" / "segway-qmod-on-master"
ENV = {"SEGWAY_SGE_MASTER": "master", "SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}


@pytest.fixture
def fake_ssh(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$SSH_ARGS"\n')
    ssh.chmod(0o755)
    return bin_dir


def run(fake_ssh: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {"PATH": f"{fake_ssh}:/usr/bin:/bin", "SSH_ARGS": str(fake_ssh / "args"), **ENV}
    full.update(env or {})
    return subprocess.run(
        [str(SCRIPT), *args], env=full, capture_output=True, text=True, check=False
    )


def test_disables_the_hosts_queue_instances_on_the_master(fake_ssh: Path) -> None:
    done = run(fake_ssh, "-d", "node002")
    assert done.returncode == 0, done.stderr
    argv = (fake_ssh / "args").read_text().splitlines()
    # Batch mode (no password prompt can hang the two minutes away), known hosts only.
    assert argv[:6] == [
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    assert argv[6] == "master"
    # What the master's shell parses: the * reaches qmod unexpanded.
    remote = shlex.split(" ".join(argv[7:]))
    assert remote == [
        "env",
        "SGE_ROOT=/var/lib/gridengine",
        "SGE_CELL=default",
        "qmod",
        "-d",
        "*@node002",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "node002"), "option -c is not one of"),
        (("-d", "node002; reboot"), "is not a host name"),
        (("-d", ""), "is not a host name"),
        (("-d",), "usage:"),
    ],
)
def test_bad_arguments_stop_before_ssh(fake_ssh: Path, args: tuple, message: str) -> None:
    done = run(fake_ssh, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (fake_ssh / "args").exists()


def test_the_master_must_be_given(fake_ssh: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "-rq", "node002"],
        env={"PATH": f"{fake_ssh}:/usr/bin:/bin", "SGE_ROOT": "/x", "SGE_CELL": "default"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "SEGWAY_SGE_MASTER" in done.stderr
    assert not (fake_ssh / "args").exists()
